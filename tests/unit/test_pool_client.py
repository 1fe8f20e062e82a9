"""Which command lines the pool's thin client (stage0/pool/client.py) hands to the keeper: a
``run`` and an ``app start``; everything else goes to the command line proper at once."""

from __future__ import annotations

import pytest

from stage0.pool.client import served


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "img"],
        ["--dir", "/d", "run", "img"],
        ["app", "start", "POD", "--app", "t"],
        ["--dir", "/d", "--insecure-options=image", "app", "start", "POD", "--app", "t"],
    ],
)
def test_runs_and_app_starts_are_offered_to_the_keeper(argv: list[str]) -> None:
    assert served(argv)


@pytest.mark.parametrize(
    "argv",
    [["app", "stop", "POD", "--app", "t"], ["app", "list", "POD"], ["status", "POD"], ["start"], ["list"]],
)
def test_other_commands_are_not(argv: list[str]) -> None:
    assert not served(argv)
