"""stage1/ABI.md states the contract's versions as stage1/abi.py has them, and says what a
third-party flavor must implement (issue #25)."""

from __future__ import annotations

import re

from stage1.abi import ABI_VERSION, ENTRYPOINTS, INTERFACE_VERSION
from tests.conftest import REPO

TEXT = (REPO / "stage1/ABI.md").read_text()


def test_the_heading_states_the_abi_version() -> None:
    heading = TEXT.splitlines()[0]
    assert heading.startswith("# "), heading
    found = re.search(r"ABI version (\d+)", heading)
    assert found and int(found.group(1)) == ABI_VERSION, (heading, ABI_VERSION)
    assert f"`ABI_VERSION = {ABI_VERSION}`" in TEXT


def test_the_entry_points_heading_states_the_interface_version() -> None:
    heading = "## Entry points: `python -m stage1 [--debug] VERB POD_DIR …`"
    assert f"{heading} (interface version {INTERFACE_VERSION})" in TEXT


def test_a_third_party_flavor_is_told_what_to_implement() -> None:
    section = TEXT.split("## What a third-party flavor must implement", 1)[1].split("\n## ", 1)[0]
    assert all(f"{verb}" in section for verb in ENTRYPOINTS)
    for must in ("exit", "254", "status/<app>", "`unit`", "`lock`", "gc", "pod.json", "POD_UUID"):
        assert must in section, must
