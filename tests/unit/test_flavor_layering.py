"""stage1 is a shared part plus one package per flavor (issue #25): a flavor builds on the shared
part and never on another flavor, and the shared part knows no flavor (only ``python -m stage1``,
the ABI's entry point, hands its verbs to the default flavor)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_layering import imports

STAGE1 = REPO / "stage1"
FLAVORS = sorted(p.parent.name for p in STAGE1.glob("*/__init__.py"))
ENTRY_POINT = STAGE1 / "__main__.py"  # dispatches to the default flavor (ABI.md)


def flavor_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "stage1" and parts[1] in FLAVORS else None


def test_the_flavors_are_packages() -> None:
    assert {"nspawn", "fly"} <= set(FLAVORS), FLAVORS


@pytest.mark.parametrize("path", sorted(STAGE1.glob("*/*.py")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_flavor_imports_another(path: Path) -> None:
    others = {m for m in imports(path) if flavor_of(m) not in (None, path.parent.name)}
    # "from stage1 import nspawn" names the package in the import's names, not its module
    assert not others, others
    text = path.read_text()
    assert not [f for f in FLAVORS if f != path.parent.name and f"from stage1 import {f}" in text]


@pytest.mark.parametrize("path", sorted(set(STAGE1.glob("*.py")) - {ENTRY_POINT}), ids=lambda p: p.name)
def test_the_shared_part_knows_no_flavor(path: Path) -> None:
    assert not {m for m in imports(path) if flavor_of(m)}
    assert not [f for f in FLAVORS if f"from stage1 import {f}" in path.read_text()]


def test_the_entry_point_is_the_default_flavors() -> None:
    assert {flavor_of(m) for m in imports(ENTRY_POINT)} - {None} == {"nspawn"}


def test_the_files_a_flavor_runs_are_where_it_looks() -> None:
    """A module that moved into a flavor's package still finds the shared scripts (the CRI's
    bidirectional mounts ran a path under stage1/nspawn/ that never existed)."""
    from stage1 import hostapps, pidns
    from stage1.nspawn import propagation

    assert os.path.isfile(propagation.MOUNT_VOLUMES), propagation.MOUNT_VOLUMES
    assert os.path.isfile(hostapps.WRITER), hostapps.WRITER
    assert os.path.dirname(pidns.BUILT).endswith("stage1/helpers")
