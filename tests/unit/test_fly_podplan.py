"""A fly pod's app unit (stage1/fly/podplan.py): its appc event handlers run in its root and
profile, as a pod's app's do (the ACE validator's pre-start and post-stop, issue #25)."""

from __future__ import annotations

import dataclasses

from stage1.fly import podplan
from tests.unit.test_fly_plan import APP, PLACE, SPEC


def properties(argv: list[str]) -> list[str]:
    return [a.removeprefix("--property=") for a in argv[: argv.index("--")] if a.startswith("--property=")]


def test_event_handlers_are_the_units_own_commands_around_the_app() -> None:
    app = dataclasses.replace(
        APP, pre_start=(("/ace-validator", "prestart"),), post_stop=(("/bin/sh", "-c", "echo $HOME 100%"),)
    )
    given = properties(podplan.app_argv(SPEC, app, PLACE, (), ()))
    assert "ExecStartPre=/ace-validator prestart" in given
    # systemd-run's -p expands no specifiers (a % stays one), a $ stays the shell's
    assert 'ExecStopPost=/bin/sh -c "echo $$HOME 100%"' in given
    assert given.index("RootDirectory=" + PLACE.root) < given.index("ExecStartPre=/ace-validator prestart")


def test_an_app_without_handlers_has_none() -> None:
    given = properties(podplan.app_argv(SPEC, APP, PLACE, (), ()))
    assert not [p for p in given if p.startswith(("ExecStartPre=", "ExecStopPost="))]
