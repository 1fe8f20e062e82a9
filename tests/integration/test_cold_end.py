"""The lean end of a cold foreground run (#26 item 4): an attached app's reaper skips journald
(``--relayed``), the app does not wait for journald's start, the pod's READY=1 at its end comes
from ``ended.service`` beside the last reaper. What must not change: the exit code, the output,
the status, the events, and a unit that ends cleanly (not failed 'protocol' for want of READY=1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod, bb, sh  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


def _events(uuid: str) -> dict[str, dict[str, str]]:
    """The pod's events in the host's journal, by event."""
    lines = sh("journalctl", "-o", "json", f"NSPOD_POD={uuid}").splitlines()
    return {entry["NSPOD_EVENT"]: entry for entry in map(json.loads, lines)}


@pytest.mark.parametrize(("script", "code", "result"), [("echo out; echo err >&2", 0, "success"),
                                                        ("echo out; exit 3", 3, "exit-code")])  # fmt: skip
def test_an_attached_runs_end_keeps_its_code_output_status_and_events(
    tmp_path: Path,
    bb: Path,  # noqa: F811
    script: str,
    code: int,
    result: str,
) -> None:
    nspod = Nspod(tmp_path / "data")
    ran = nspod(
        "run", "--uuid-file-save", str(tmp_path / "uuid"), str(bb), "--exec=/bin/sh", "--", "-c", script
    )
    assert ran.returncode == code, ran.stderr
    assert ran.stdout == "bb: out\n"
    uuid = (tmp_path / "uuid").read_text().strip()
    assert f"app-bb={code}" in nspod("status", uuid).stdout.splitlines()
    events = _events(uuid)
    assert events["exited"]["NSPOD_EXIT_CODE"] == str(code)
    # READY=1 reached the host before the pod ended: 'protocol' if ended.service had not said it
    assert events["stop"]["NSPOD_RESULT"] == result
    logs = nspod("logs", uuid)
    assert (logs.stdout, logs.stderr) == ("bb: out\n", "bb: err\n" if code == 0 else "")
    units = tmp_path / "data/pods/exited-garbage" / uuid / "stage1/rootfs/etc/systemd/system"
    if not units.is_dir():
        units = next((tmp_path / "data/pods").glob(f"*/{uuid}")) / "stage1/rootfs/etc/systemd/system"
    assert "ExecStop=/nspod/bin/reaper --relayed bb" in (units / "reaper-bb.service").read_text()
    assert (units / "ended.service").is_file()
