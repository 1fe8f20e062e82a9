"""What a new user hit in the first hour (issue #23 item 16), against a real systemd: `status --wait
NAME`, `gc --grace-period=0`, the registration socket's file after a stop, and a pod file's
[service] table that pod@ does not run with yet."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pod_units import UNIT_DIR, Host, host, image  # noqa: F401 (fixtures)
from tests.integration.test_pods import Nspod, bb, sh  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


def test_status_wait_takes_a_pod_name(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    started = nspod(
        "run", "--detach", "--name=waiter", str(bb), "--exec=/bin/sh", "--", "-c", "sleep 2; exit 3"
    )
    assert started.returncode == 0, started.stderr
    for argv in (["--wait-ready", "waiter"], ["--wait", "waiter"], ["--wait=30s", "waiter"]):
        done = nspod("status", *argv)
        assert done.returncode == 0, f"status {argv}: {done.stderr}"
    assert "app-bb=3" in nspod("status", "--wait", "waiter").stdout
    gc = nspod("gc", "--grace-period=0")
    assert gc.returncode == 0, gc.stderr
    assert nspod("gc", "--grace-period=0").returncode == 0  # marked, then removed
    assert nspod("list", "--no-legend").stdout.strip() == ""


def test_the_registration_socket_leaves_no_file(tmp_path: Path) -> None:
    """The shipped socket unit, moved to a path of this test's own (the test host's metadata
    service keeps its own socket)."""
    path = f"/run/nspod-test-{tmp_path.name}/metadata.sock"
    text = (REPO / "units/nspod-metadata-register.socket").read_text()
    (UNIT_DIR / "nspod-test-register.socket").write_text(
        text.replace("ListenStream=/run/nspod/metadata.sock", f"ListenStream={path}").replace(
            "Service=nspod-metadata.service", "Service=nspod-test-register.service"
        )
    )
    (UNIT_DIR / "nspod-test-register.service").write_text("[Service]\nExecStart=/bin/true\n")
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    try:
        subprocess.run(["systemctl", "start", "nspod-test-register.socket"], check=True)
        assert Path(path).is_socket()
        subprocess.run(["systemctl", "stop", "nspod-test-register.socket"], check=True)
        assert not Path(path).exists()
    finally:
        subprocess.run(["systemctl", "stop", "nspod-test-register.socket"], check=False)
        for unit in ("nspod-test-register.socket", "nspod-test-register.service"):
            (UNIT_DIR / unit).unlink()
        subprocess.run(["systemctl", "daemon-reload"], check=True)


def _started(host: Host, name: str) -> str:  # noqa: F811
    """Start pod@NAME, stop it, and return what this start said in the journal."""
    # the journal's position now (--since has a resolution of seconds: it took an earlier start's
    # lines logged in the same second, and needed a second's sleep besides)
    cursor = sh("journalctl", "-n", "0", "--show-cursor", "-q").strip().removeprefix("-- cursor: ")
    assert cursor, "no journal cursor"
    started = subprocess.run(
        ["systemctl", "start", f"pod@{name}"], capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr
    subprocess.run(["systemctl", "stop", f"pod@{name}"], check=True, timeout=120)
    return sh("journalctl", "-u", f"pod@{name}", "-o", "cat", "--no-pager", f"--after-cursor={cursor}")


def test_a_service_table_not_installed_is_said_at_start(host: Host, image: Path) -> None:  # noqa: F811
    path = host.pod_file("svc", f'[[app]]\nimage = "{image}"\n\n[service]\nRestart = "on-failure"\n')
    warning = "nspod: warning: the [service] table of"
    journal = _started(host, "svc")
    assert f"{warning} {path} is not what pod@svc.service runs with; run 'nspod pod install svc'" in journal
    installed = host.nspod("pod", "install", "svc")
    assert installed.returncode == 0, installed.stderr
    try:
        assert warning not in _started(host, "svc")
        path.write_text(path.read_text().replace("on-failure", "always"))  # edited, not installed
        assert warning in _started(host, "svc")
    finally:
        host.nspod("pod", "uninstall", "svc")
