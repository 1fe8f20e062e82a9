"""stage1/systemd.py against a real systemd: start, wait, status, journal, stop, kill, reset-failed."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from stage1.systemd import Systemd, UnitExists, UnitNotFound
from stage1.transient import CollectMode, ExecCommand, ServiceType, TransientService

pytestmark = pytest.mark.systemd


def sh(*args: str) -> str:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=60).stdout


@pytest.fixture
def name() -> Iterator[str]:
    unit = f"nspod-test-{uuid.uuid4().hex[:12]}.service"
    yield unit
    # whatever the test did, nothing of it may stay behind
    subprocess.run(["systemctl", "stop", unit], capture_output=True, check=False)
    subprocess.run(["systemctl", "reset-failed", unit], capture_output=True, check=False)


def journal(match: str, expect: set[str], timeout: float = 10.0) -> set[str]:
    """The journal's messages for ``match``, polled until ``expect`` is there: journald reads a
    service's stdout stream asynchronously, even after ``journalctl --sync``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = set(sh("journalctl", "-o", "cat", match).splitlines())
        if expect <= lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def loaded(unit: str) -> bool:
    return unit in sh("systemctl", "list-units", "--all", "--no-legend", "--plain", unit)


def service(name: str, script: str, **kwargs: Any) -> TransientService:
    tag = name.removesuffix(".service").upper().replace("-", "_")
    return TransientService(
        name=name,
        exec_start=(ExecCommand.of("/bin/sh", "-c", script),),
        log_extra_fields=(("NSPOD_TEST", tag),),
        **kwargs,
    )


def test_exit_status_and_journal(name: str) -> None:
    with Systemd() as sd:
        # alive a moment: journald tags a stream by its writer's cgroup, which an instant exit can beat
        sd.start(service(name, 'echo hi; echo "FOO=$FOO"; sleep 0.3; exit 7', environment=(("FOO", "bar"),)))
        status = sd.wait(name, timeout=30)
        assert (status.active_state, status.result) == ("failed", "exit-code")
        assert (status.exec_main_status, status.how) == (7, "exited")
        assert loaded(name)  # AddRef keeps it for us to read
        sd.unref(name)
    assert {"hi", "FOO=bar"} <= journal(f"_SYSTEMD_INVOCATION_ID={status.invocation_id}", {"hi", "FOO=bar"})
    tag = name.removesuffix(".service").upper().replace("-", "_")
    assert "hi" in journal(f"NSPOD_TEST={tag}", {"hi"})  # LogExtraFields tags every line
    assert not loaded(name)  # failed, unreferenced, CollectMode=inactive-or-failed: gone


def test_success_unloads_when_connection_closes(name: str) -> None:
    with Systemd() as sd:
        sd.start(service(name, "exit 0", type=ServiceType.ONESHOT))
        status = sd.wait(name, timeout=30)
        assert (status.active_state, status.exec_main_status, status.result) == ("inactive", 0, "success")
    assert not loaded(name)


def test_stop(name: str) -> None:
    with Systemd() as sd:
        sd.start(service(name, "exec sleep 300"))
        running = sd.wait(name, until="active", timeout=30)
        assert running.active_state == "active" and running.main_pid > 0
        assert sh("systemctl", "is-active", name).strip() == "active"
        stopped = sd.stop(name, timeout=30)
        assert stopped is not None
        # SIGTERM is a clean exit signal for systemd: the unit ends inactive, not failed
        assert (stopped.active_state, stopped.result) == ("inactive", "success")
    assert not loaded(name)


def test_kill_and_reset_failed(name: str) -> None:
    with Systemd() as sd:
        # CollectMode=inactive keeps the failed unit, so reset-failed has work to do
        sd.start(service(name, "exec sleep 300", collect_mode=CollectMode.INACTIVE))
        sd.wait(name, until="active", timeout=30)
        sd.kill(name, signal.SIGKILL)
        killed = sd.wait(name, timeout=30)
        assert (killed.active_state, killed.result, killed.how) == ("failed", "signal", "killed")
        assert killed.exec_main_status == signal.SIGKILL
        sd.unref(name)
        assert sh("systemctl", "is-failed", name).strip() == "failed"
        sd.reset_failed(name)
    assert not loaded(name)
    assert sh("systemctl", "list-units", "--failed", "--no-legend", "--plain").strip() == ""


def test_errors_are_translated(name: str) -> None:
    with Systemd() as sd:
        with pytest.raises(UnitNotFound) as missing:
            sd.status(name)
        assert "hint" in missing.value.diagnostics()
        sd.start(service(name, "exec sleep 300"))
        with pytest.raises(UnitExists):
            sd.start(service(name, "exec sleep 300"))
        sd.stop(name)


def test_no_units_left_behind() -> None:
    assert sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-test-*").strip() == ""
    assert sh("systemctl", "is-system-running").strip() == "running"
