"""Many idle pods on one host: each boots, answers ``machinectl shell``, and holds no more inotify
instances than its systemd cannot do without.

A host allows root 128 inotify instances (fs.inotify.max_user_instances) for every pod together:
pods in their own user namespaces are charged to their creator, root, all the same. systemd 252
as a pod's PID 1 needs three (the /etc/localtime watch, libmount's utab monitor, cgroup.events),
so this host fits ~41 pods; the test boots 32 of them at once, leaving room for a few test
hosts elsewhere on the machine (each systemd holds 3 too)."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd

PODS = int(os.environ.get("NSPOD_TEST_PODS", "32"))


@pytest.fixture
def nspod(tmp_path: Path) -> Nspod:
    return Nspod(tmp_path / "data")


def inotify_instances(pid: str) -> int:
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd) == "anon_inode:inotify")


def shell_says(machine: str) -> str:
    """What ``machinectl shell`` prints; a few tries, as machined may find the pod's bus still coming up."""
    argv = ["machinectl", "-q", "shell", machine, "/bin/sh", "-c", "echo up-$((6*7)) $(hostname)"]
    for _ in range(20):
        said = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        ).stdout
        if "up-42" in said:
            return said.strip()
        time.sleep(0.5)
    return said.strip()


def test_many_idle_pods_boot_and_answer(nspod: Nspod) -> None:
    uuids: list[str] = []
    failed: list[str] = []

    def sandbox(_: int) -> None:
        made = nspod("app", "sandbox", timeout=300)
        if made.returncode == 0:
            uuids.append(made.stdout.strip().splitlines()[-1])
        else:
            failed.append(made.stderr)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(sandbox, range(PODS)))
        assert failed == [], failed[0]
        machines = [f"nspod-{u}" for u in uuids]
        with ThreadPoolExecutor(8) as pool:
            said = list(pool.map(shell_says, machines))
        assert all(s.startswith("up-42 ") for s in said), said
        listed = subprocess.run(["machinectl", "list", "--no-legend"], capture_output=True, text=True).stdout
        assert all(m in listed for m in machines)
        for machine in machines:
            leader = subprocess.run(
                ["machinectl", "show", machine, "-p", "Leader", "--value"], capture_output=True, text=True
            ).stdout.strip()
            assert inotify_instances(leader) <= 3, machine
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda u: nspod("stop", "--force", u), uuids))
            list(pool.map(lambda u: nspod("rm", u), uuids))
    assert (
        subprocess.run(["machinectl", "list", "--no-legend"], capture_output=True, text=True).stdout.strip()
        == ""
    )
