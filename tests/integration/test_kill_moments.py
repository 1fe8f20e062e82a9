"""kill -9 at the moment that matters (#23 items 18, 20, 21): each test starts a verb, watches for
the moment its fault left something behind (a mount made, a claim written, a unit started) and
kills the nspod right then; afterwards nothing of the host stays taken and the pod says why."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb, busybox_image  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@pytest.fixture
def nspod(tmp_path: Path) -> Nspod:
    return Nspod(tmp_path / "data")


def kill_when(nspod: Nspod, args: list[str], moment: Callable[[], bool], timeout: float = 60) -> bool:
    """Run ``nspod ARGS`` and kill -9 it as soon as ``moment()`` holds; False if it ended first."""
    process = subprocess.Popen(
        nspod.argv(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if moment():
                process.send_signal(signal.SIGKILL)
                return True
            time.sleep(0.001)
        return False
    finally:
        process.communicate(timeout=60)


def mounts_under(path: Path) -> list[str]:
    """The host's mount points at or below ``path``."""
    prefix = str(path)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def test_killed_app_add_leaks_no_mount_and_gc_works(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    # item 18: the app's root is mounted on the host, handed into the pod, then detached; a kill
    # in between left the mount, and every later gc failed with EBUSY
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    killed = 0
    for index in range(3):
        args = ["app", "add", uuid, str(bb), "--name", f"a{index}", "--exec", "/bin/true"]
        killed += kill_when(nspod, args, lambda: bool(mounts_under(nspod.data)))
    assert killed == 3
    assert nspod("stop", uuid).returncode == 0
    assert mounts_under(nspod.data) == []  # stop detaches what the killed adds left
    for _ in range(2):
        gc = nspod("gc", "--grace-period=0s")
        assert gc.returncode == 0, gc.stderr
    assert mounts_under(nspod.data) == []
    assert not list((nspod.data / "pods/.removing").glob("*"))
    assert nspod("list", "--no-legend").stdout.strip() == ""


def test_gc_detaches_a_dead_process_mount_and_never_deletes_through_one(
    nspod: Nspod,
    bb: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # item 18: mounts below a pod's directory are the pod's; removal detaches them first and
    # never crosses a mount point (rm -rf through a bind mount of a host volume deletes its data)
    ran = nspod("run", str(bb), "--exec=/bin/true")
    assert ran.returncode == 0, ran.stderr
    pod = next((nspod.data / "pods").glob("*/*"))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_text("keep me")
    target = pod / "stage1/leftover"
    target.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(precious), str(target)], check=True)
    try:
        gc = nspod("gc", "--grace-period=0s")
        assert gc.returncode == 0, gc.stderr
        assert nspod("gc", "--grace-period=0s").returncode == 0
        assert (precious / "data").read_text() == "keep me"
        assert mounts_under(nspod.data) == []
        assert not pod.exists() and not list((nspod.data / "pods/.removing").glob("*"))
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


PORTS = Path("/run/nspod/net/ports")


def claims() -> list[Path]:
    return [p for p in PORTS.glob("*") if not p.name.startswith(".")] if PORTS.is_dir() else []


def test_a_port_claimed_by_a_run_killed_before_its_pod_started_is_free(nspod: Nspod, tmp_path: Path) -> None:
    # item 20: the claim is written before the pod's network is made; a run killed right then
    # left it to a pod that never started, and every later run on that port was refused
    image = busybox_image(
        tmp_path,
        app={
            "exec": ["/bin/sleep", "1000"],
            "user": "0",
            "group": "0",
            "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
        },
    )
    assert nspod("fetch", str(image)).returncode == 0
    args = ["run", "--detach", "--port=http:18093", str(image)]
    assert kill_when(nspod, args, lambda: bool(claims()))
    again = nspod(*args)
    assert again.returncode == 0, again.stderr  # the claim's owner never ran: the port is free
    uuid = again.stdout.strip().splitlines()[-1]
    assert [c.read_text().split()[0] for c in claims()] == [uuid]
    assert nspod("stop", uuid).returncode == 0
    for _ in range(2):
        assert nspod("gc", "--grace-period=0s").returncode == 0
    assert claims() == []
