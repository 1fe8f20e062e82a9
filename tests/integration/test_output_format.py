"""One output format across verbs (issue #23 item 17, stage0/schema/schemas/output.json's
``$comment``): every verb that prints the pods it made or acted on prints whole UUIDs, bare, one a
line; ``status`` and ``app status`` print times as their JSON does (RFC 3339 UTC); every JSON output
validates against the schema."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_output_schema
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
DEFS = json.loads((REPO / "stage0/schema/schemas/output.json").read_text())["$defs"]
UUID, TIME = re.compile(DEFS["uuid"]["pattern"]), re.compile(DEFS["time"]["pattern"])


def uuid_lines(nspod: Nspod, *args: str) -> list[str]:
    done = nspod(*args)
    assert done.returncode == 0, f"nspod {' '.join(args)}: {done.stderr}"
    lines = done.stdout.splitlines()
    assert lines and all(UUID.fullmatch(line) for line in lines), f"nspod {' '.join(args)}: {done.stdout!r}"
    return lines


def key_values(nspod: Nspod, *args: str) -> dict[str, str]:
    done = nspod(*args)
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_pods_are_named_one_way_by_every_verb(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    (detached,) = uuid_lines(nspod, "run", "--detach", str(bb), "--exec=/bin/sleep", "--", "300")
    (prepared,) = uuid_lines(nspod, "prepare", str(bb))
    (sandbox,) = uuid_lines(nspod, "app", "sandbox")
    assert uuid_lines(nspod, "stop", detached, sandbox) == [detached, sandbox]
    nspod("status", "--wait", detached)
    nspod("status", "--wait", sandbox)
    assert uuid_lines(nspod, "rm", detached, prepared, sandbox) == [detached, prepared, sandbox]


def test_status_and_app_status_say_times_as_json_does(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    (uuid,) = uuid_lines(nspod, "run", "--detach", str(bb), "--exec=/bin/true")
    text = key_values(nspod, "status", "--wait", uuid)
    shown = json.loads(nspod("status", "--format=json", uuid).stdout)
    assert_output_schema("pod-status", shown)
    assert TIME.fullmatch(text["created"]) and TIME.fullmatch(text["started"]), text
    assert (text["created"], text["started"]) == (shown["created"], shown["started"])
    assert text["exited"] == "true"

    (sandbox,) = uuid_lines(nspod, "app", "sandbox")
    try:
        added = nspod("app", "add", sandbox, str(bb), "--name=one", "--exec=/bin/true")
        assert added.returncode == 0, added.stderr
        assert nspod("app", "start", sandbox, "--app=one").returncode == 0
        listed = json.loads(nspod("app", "list", "--format=json", sandbox).stdout)
        assert_output_schema("app-list", listed)
        for _ in range(100):
            app = key_values(nspod, "app", "status", sandbox, "--app=one")
            if app["state"] == "exited":
                break
            time.sleep(0.1)
        assert app["state"] == "exited", app
        shown = json.loads(nspod("app", "status", "--format=json", sandbox, "--app=one").stdout)
        assert_output_schema("app-state", shown)
        assert TIME.fullmatch(app["started"]) and TIME.fullmatch(app["exited"]), app
        assert (app["started"], app["exited"], app["exit_code"]) == (shown["started"], shown["exited"], "0")
        assert app["pid"] == ""  # null: nothing
    finally:
        nspod("stop", sandbox)
        nspod("rm", sandbox)
    assert uuid_lines(nspod, "rm", uuid) == [uuid]
