"""An app a signal ended is told from one that exited with the signal's number (issue #23 item 13):
128 + N and the signal's name, as shells and podman report it — in run's exit code, status (text
and JSON), list's APPS column, and an app sandbox's app status and app list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_output_schema
from tests.integration.test_app_sandbox import wait_state
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@pytest.mark.parametrize(
    ("script", "code", "signal"),
    [("kill -TERM $$", 143, "SIGTERM"), ("exit 15", 15, None), ("kill -KILL $$", 137, "SIGKILL")],
)
def test_run_and_status_tell_a_signal_from_an_exit_code(
    tmp_path: Path,
    bb: Path,  # noqa: F811
    script: str,
    code: int,
    signal: str | None,
) -> None:
    nspod = Nspod(tmp_path / "data")
    ran = nspod(
        "run", "--uuid-file-save", str(tmp_path / "uuid"), str(bb), "--exec=/bin/sh", "--", "-c", script
    )
    assert ran.returncode == code, ran.stderr
    uuid = (tmp_path / "uuid").read_text().strip()
    text = nspod("status", uuid).stdout.splitlines()
    assert f"app-bb={code}" in text, text
    assert [t for t in text if t.startswith("signal-")] == ([f"signal-bb={signal}"] if signal else []), text
    shown = json.loads(nspod("status", "--format=json", uuid).stdout)
    assert_output_schema("pod-status", shown)
    assert [(a["exit_code"], a["signal"]) for a in shown["apps"]] == [(code, signal)]
    cell = f"bb={code}" + (f"({signal})" if signal else "")
    assert cell in nspod("list", "--no-legend", "--full").stdout.split()


def test_app_status_in_a_sandbox_names_the_signal(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    box = made.stdout.strip().splitlines()[-1]
    try:
        for name, script in (("killed", "kill -KILL $$"), ("exited", "exit 9")):
            added = nspod(
                "app", "add", box, str(bb), "--name", name, "--exec", "/bin/sh", "--", "-c", script
            )
            assert added.returncode == 0, added.stderr
            assert nspod("app", "start", box, "--app", name).returncode == 0
            wait_state(nspod, box, name, "exited")
        killed = json.loads(nspod("app", "status", box, "--app", "killed", "--format=json").stdout)
        assert (killed["exit_code"], killed["signal"]) == (137, "SIGKILL"), killed
        exited = nspod("app", "status", box, "--app", "exited").stdout.splitlines()
        assert "exit_code=9" in exited and "signal=" in exited, exited
        listed = nspod("app", "list", box).stdout
        assert "137(SIGKILL)" in listed.split() and "9" in listed.split(), listed
    finally:
        nspod("stop", box)
