"""Dependencies point one way: stage1 never imports stage0; stage0 reaches stage1 only via stage1.abi
(and stage1.transient/systemd only from the stage1 side)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((REPO / "stage1").rglob("*.py")), ids=lambda p: p.name)
def test_stage1_never_imports_stage0(path: Path) -> None:
    assert not {m for m in imports(path) if m == "stage0" or m.startswith("stage0.")}


@pytest.mark.parametrize("path", sorted((REPO / "stage0").rglob("*.py")), ids=lambda p: p.name)
def test_stage0_uses_only_the_abi(path: Path) -> None:
    assert {m for m in imports(path) if m.startswith("stage1")} <= {"stage1.abi"}


def test_abi_exports() -> None:
    import stage1.abi

    assert set(stage1.abi.__all__) == {
        "ABI_VERSION",
        "ENTRYPOINTS",
        "AppSpec",
        "Error",
        "ExitCode",
        "PodPaths",
        "PodSpec",
        "VolumeSpec",
        "call_stage1",
        "unit_name",
    }


@pytest.mark.parametrize(
    "path",
    sorted([*(REPO / "stage0").rglob("*.py"), *(REPO / "stage1").rglob("*.py")]),
    ids=lambda p: p.name,
)
def test_only_the_adapter_touches_dbus(path: Path) -> None:
    dbus = {m for m in imports(path) if m.split(".")[0] in ("pystemd", "dbus_fast", "dbus_next")}
    assert not dbus or path.name == "systemd.py"


def test_every_package_is_listed_in_pyproject() -> None:
    """The flat layout lists packages by hand; a forgotten one works from the checkout but not installed."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        str(p.parent.relative_to(REPO)).replace("/", ".")
        for top in ("stage0", "stage1")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert listed == found
