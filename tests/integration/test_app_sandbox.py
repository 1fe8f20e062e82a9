"""App sandboxes (``nspod app``) against a real systemd: apps added to a running pod, started,
failing with their own codes, stopped and removed while the pod lives on; what machinectl, the
pod's mounts, ``status``, ``cat-manifest`` and ``logs`` say along the way."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@pytest.fixture
def nspod(tmp_path: Path) -> Nspod:
    return Nspod(tmp_path / "data")


@pytest.fixture
def sandbox(nspod: Nspod) -> Iterator[str]:
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    yield uuid
    nspod("stop", uuid)
    nspod("rm", uuid)


def apps(nspod: Nspod, uuid: str) -> dict[str, dict[str, object]]:
    listed = nspod("app", "list", uuid, "--format=json")
    assert listed.returncode == 0, listed.stderr
    return {a["name"]: a for a in json.loads(listed.stdout)}


def wait_state(nspod: Nspod, uuid: str, app: str, state: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        now = apps(nspod, uuid)[app]
        if now["state"] == state or time.monotonic() > deadline:
            assert now["state"] == state, now
            return now
        time.sleep(0.05)


def pod_mounts(nspod: Nspod, uuid: str) -> str:
    """The mount table of the pod's PID 1, seen from the host."""
    machine = f"nspod-{uuid}"
    leader = subprocess.run(["machinectl", "show", machine, "-p", "Leader", "--value"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return Path(f"/proc/{leader}/mountinfo").read_text()


def test_apps_come_and_go_in_a_running_sandbox(nspod: Nspod, sandbox: str, bb: Path) -> None:  # noqa: F811
    machine = f"nspod-{sandbox}"
    shown = subprocess.run(["machinectl", "show", machine, "-p", "State", "--value"],
                           capture_output=True, text=True)  # fmt: skip
    assert shown.stdout.strip() == "running"
    assert nspod("status", sandbox).returncode == 0
    assert apps(nspod, sandbox) == {}

    for name, code in (("good", 0), ("bad", 3)):
        added = nspod("app", "add", sandbox, str(bb), "--name", name, "--exec", "/bin/sh",
                      "--", "-c", f"echo from-{name}; exit {code}")  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip() == name
    assert {n: a["state"] for n, a in apps(nspod, sandbox).items()} == {"good": "created", "bad": "created"}
    assert "/opt/stage2/bad/rootfs" in pod_mounts(nspod, sandbox)

    for name in ("good", "bad"):
        assert nspod("app", "start", sandbox, "--app", name).returncode == 0
    assert wait_state(nspod, sandbox, "good", "exited")["exit_code"] == 0
    bad = wait_state(nspod, sandbox, "bad", "exited")
    assert bad["exit_code"] == 3 and bad["started"] and bad["exited"]
    status = nspod("app", "status", sandbox, "--app", "bad")
    assert "exit_code=3" in status.stdout.splitlines() and "state=exited" in status.stdout.splitlines()
    # the sandbox outlives a failing app
    assert nspod.status(sandbox)["state"] == "running"
    logs = nspod("logs", sandbox, "--app", "bad")
    assert "from-bad" in logs.stdout and "from-good" not in logs.stdout

    manifest = json.loads(nspod("cat-manifest", sandbox).stdout)
    assert [a["name"] for a in manifest["apps"]] == ["good", "bad"]
    removed = nspod("app", "rm", sandbox, "--app", "bad")
    assert removed.returncode == 0, removed.stderr
    assert list(apps(nspod, sandbox)) == ["good"]
    assert "/opt/stage2/bad/rootfs" not in pod_mounts(nspod, sandbox)
    assert [a["name"] for a in json.loads(nspod("cat-manifest", sandbox).stdout)["apps"]] == ["good"]
    # the name is free again, and the app runs anew
    again = nspod("app", "add", sandbox, str(bb), "--name", "bad", "--exec", "/bin/true")
    assert again.returncode == 0, again.stderr
    assert nspod("app", "start", sandbox, "--app", "bad").returncode == 0
    assert wait_state(nspod, sandbox, "bad", "exited")["exit_code"] == 0


def test_a_long_running_app_stops_and_restarts(nspod: Nspod, sandbox: str, bb: Path) -> None:  # noqa: F811
    added = nspod("app", "add", sandbox, str(bb), "--name", "sleeper", "--exec", "/bin/sleep", "--", "1000")
    assert added.returncode == 0, added.stderr
    for _ in range(20):
        assert nspod("app", "start", sandbox, "--app", "sleeper").returncode == 0
        running = wait_state(nspod, sandbox, "sleeper", "running")
        assert running["pid"]
        stopped = nspod("app", "stop", sandbox, "--app", "sleeper")
        assert stopped.returncode == 0, stopped.stderr
        wait_state(nspod, sandbox, "sleeper", "exited")
    assert nspod.status(sandbox)["state"] == "running"


def test_apps_added_in_parallel(nspod: Nspod, sandbox: str, bb: Path) -> None:  # noqa: F811
    def add(index: int) -> subprocess.CompletedProcess[str]:
        return nspod("app", "add", sandbox, str(bb), "--name", f"app{index}", "--exec", "/bin/sh",
                     "--", "-c", f"exit {index}")  # fmt: skip

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(add, range(1, 6)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(apps(nspod, sandbox)) == [f"app{i}" for i in range(1, 6)]
    with ThreadPoolExecutor(5) as pool:
        started = list(pool.map(lambda i: nspod("app", "start", sandbox, "--app", f"app{i}"), range(1, 6)))
    assert all(r.returncode == 0 for r in started), [r.stderr for r in started]
    for index in range(1, 6):
        assert wait_state(nspod, sandbox, f"app{index}", "exited")["exit_code"] == index
    spec = json.loads(nspod("cat-manifest", sandbox).stdout)
    assert sorted(a["name"] for a in spec["apps"]) == [f"app{i}" for i in range(1, 6)]


def test_clear_errors(nspod: Nspod, sandbox: str, bb: Path) -> None:  # noqa: F811
    unknown = nspod("app", "start", sandbox, "--app", "nope")
    assert unknown.returncode == 254 and "no app 'nope'" in unknown.stderr
    assert nspod("app", "add", sandbox, str(bb), "--name", "one", "--exec", "/bin/true").returncode == 0
    twice = nspod("app", "add", sandbox, str(bb), "--name", "one", "--exec", "/bin/true")
    assert twice.returncode != 0 and "already has an app 'one'" in twice.stderr
    assert list(apps(nspod, sandbox)) == ["one"]  # nothing half-added
    port = nspod("app", "sandbox", "--port", "http:8080")
    assert port.returncode == 2 and "sandbox starts empty" in port.stderr
    plain = nspod("run", "--detach", str(bb), "--exec", "/bin/sleep", "--", "100")
    assert plain.returncode == 0, plain.stderr
    uuid = plain.stdout.strip().splitlines()[-1]
    try:
        refused = nspod("app", "add", uuid, str(bb))
        assert refused.returncode == 2 and "not an app sandbox" in refused.stderr
    finally:
        nspod("stop", uuid)
