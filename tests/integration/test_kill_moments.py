"""kill -9 at the moment that matters (#23 items 18, 20, 21): each test starts a verb, watches for
the moment its fault left something behind (a mount made, a claim written, a unit started) and
kills the nspod right then; afterwards nothing of the host stays taken and the pod says why."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
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


def kill_when(
    nspod: Nspod,
    args: list[str],
    moment: Callable[[], bool],
    timeout: float = 60,
    out: list[str] | None = None,
) -> bool:
    """Run ``nspod ARGS`` and kill -9 it as soon as ``moment()`` holds; False if it ended first.
    ``out`` collects its stdout's lines as they come."""
    process = subprocess.Popen(
        nspod.argv(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: (out if out is not None else []).extend(process.stdout))  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if moment():
                process.send_signal(signal.SIGKILL)
                return True
            time.sleep(0.001)
        return False
    finally:
        process.wait(timeout=60)
        reader.join(timeout=60)


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
    pod = next((nspod.data / "pods/run").glob(f"{uuid}"))
    removed = nspod("app", "rm", uuid, "--app", "a0")  # a half-added app goes with its mount
    assert removed.returncode == 0, removed.stderr
    assert mounts_under(pod / "overlay/a0") == [] and not (pod / "overlay/a0").exists()
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


def the_pod(nspod: Nspod) -> Path | None:
    run = nspod.data / "pods/run"
    return next(run.iterdir(), None) if run.is_dir() else None


def unit_started(nspod: Nspod) -> bool:
    pod = the_pod(nspod)
    if pod is None or not (pod / "started").exists():
        return False
    unit = (pod / "unit").read_text().strip()
    shown = subprocess.run(["systemctl", "show", "-p", "ActiveState", "--value", unit],
                           capture_output=True, text=True)  # fmt: skip
    return shown.stdout.strip() in ("activating", "active")


def wait_exited(nspod: Nspod, uuid: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while (status := nspod.status(uuid)).get("state") != "exited":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


APP = "sleep 1; i=0; while [ $i -lt 30 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done; exit 4"


@pytest.mark.parametrize("moment", ["before-the-unit", "unit-started", "app-writing"])
def test_a_foreground_run_killed_leaves_a_pod_that_runs_on(nspod: Nspod, bb: Path, moment: str) -> None:  # noqa: F811
    # item 21: killed after its pod's unit started, the foreground run took the apps' output
    # sockets along; the app then failed to start (209/STDOUT), shown as its exit code
    assert nspod("fetch", str(bb)).returncode == 0
    out: list[str] = []
    moments = {
        "before-the-unit": lambda: (pod := the_pod(nspod)) is not None and (pod / "unit").exists(),
        "unit-started": lambda: unit_started(nspod),
        "app-writing": lambda: any("line-3" in line for line in out),
    }
    args = ["run", str(bb), "--exec=/bin/sh", "--", "-c", APP]
    assert kill_when(nspod, args, moments[moment], out=out)
    pod = the_pod(nspod)
    assert pod is not None
    status = wait_exited(nspod, pod.name)
    if moment == "before-the-unit":
        assert "app-bb" not in status, status  # it never started, and says so: no exit code
        assert "never started" in nspod("stop", pod.name).stderr
        return
    assert status["app-bb"] == "4", status  # the app's own code: it ran on to its end
    subprocess.run(["journalctl", "--sync"], check=False)
    logs = nspod("logs", pod.name).stdout
    assert "line-29" in logs, logs  # what it wrote once nobody showed it is in the journal


def netns_left() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return [n for n in listed if n.startswith("nspod-")]


@pytest.mark.parametrize("gone", ["pod", "record"])
def test_gc_takes_down_a_network_whose_pod_or_record_is_gone(nspod: Nspod, bb: Path, gone: str) -> None:  # noqa: F811
    # the kill -9 storm: a pod's namespace and its teardown record outlived both gcs. A network
    # is torn down by its pod's gc; one whose pod went without it (its teardown killed or failing, a
    # pod removed by hand or an older nspod) had no owner left, and a namespace that outlived its
    # record (its teardown ran) neither. gc now sweeps both (stage1/orphans.py).
    assert nspod("fetch", str(bb)).returncode == 0
    before = netns_left()  # what earlier tests left for their own gcs (other data dirs)
    argv = nspod.argv("run", "--detach", str(bb), "--exec=/bin/sleep", "--", "30")
    argv[1:3] = ["-m", "tests.harness.at_moment", "kill", "netns-made"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run(argv, env=env, capture_output=True).returncode == -signal.SIGKILL
    pod = the_pod(nspod)
    assert pod is not None
    record = Path("/run/nspod/net") / pod.name
    assert sorted(netns_left()) == sorted([*before, f"nspod-{pod.name}"]) and (record / "down").exists()
    subprocess.run(["rm", "-rf", str(pod if gone == "pod" else record)], check=True)
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert f"nspod-{pod.name}" not in netns_left()
    assert not record.exists()
