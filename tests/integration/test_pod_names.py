"""A pod's name taken by a running pod (issue #23 item 11): refused before the second pod is made
— exit 2, one line, no UUID, no pod, no address lease, no port claim — for run, app sandbox,
run-prepared and pod@NAME."""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_network import web_image
from tests.integration.test_pod_units import Host, host  # noqa: F401 (a fixture)
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
IPAM, PORTS = Path("/run/nspod/net/ipam"), Path("/run/nspod/net/ports")


def leases() -> set[str]:
    """The addresses leased and the ports claimed on the host, by every pod."""
    return {str(p) for d in (IPAM, PORTS) if d.exists() for p in d.rglob("*") if p.is_file()}


def refused(done: subprocess.CompletedProcess[str], name: str) -> None:
    assert done.returncode == 2, done.stderr
    line, hint = done.stderr.splitlines()
    assert f"is running as {name}" in line and "hint:" in hint, done.stderr
    assert done.stdout == "", done.stdout  # no UUID


def test_a_second_pod_of_a_running_name_is_refused_before_it_is_made(tmp_path: Path) -> None:
    image = web_image(tmp_path / "web")
    nspod = Nspod(tmp_path / "data")
    ran = nspod("run", "--detach", "--name=dup", "--port=http:18101", str(image))
    assert ran.returncode == 0, ran.stderr
    first = ran.stdout.strip()
    try:
        before = leases()
        prepared = nspod("prepare", "--name=dup", str(image))  # a prepared pod may share it
        assert prepared.returncode == 0, prepared.stderr
        second = prepared.stdout.strip().splitlines()[-1]
        uuid_file = tmp_path / "uuid"
        refused(nspod("run", "--detach", "--name=dup", "--port=http:18102", f"--uuid-file-save={uuid_file}",
                      str(image)), "dup")  # fmt: skip
        assert not uuid_file.exists()
        refused(nspod("app", "sandbox", "--name=dup"), "dup")
        refused(nspod("run-prepared", "--detach", second), "dup")
        assert leases() == before
        pods = {p["uuid"]: p["state"] for p in json.loads(nspod("list", "--full", "--format=json").stdout)}
        assert pods == {first: "running", second: "prepared"}, pods
    finally:
        nspod("stop", first)


def test_pod_at_name_is_refused_while_a_pod_of_that_name_runs(host: Host, tmp_path: Path) -> None:  # noqa: F811
    image = web_image(tmp_path / "web")
    nspod = Nspod(tmp_path / "other-data")  # another data dir: machined's name, not nspod's records
    ran = nspod("run", "--detach", "--name=taken", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        host.pod_file("taken", f'[[app]]\nimage = "{image}"\n')
        started = subprocess.run(
            ["systemctl", "start", "pod@taken"], capture_output=True, text=True, timeout=120
        )
        assert started.returncode != 0
        journal = subprocess.run(["journalctl", "-u", "pod@taken", "-o", "cat", "--no-pager"],
                                 capture_output=True, text=True).stdout  # fmt: skip
        assert "a machine named taken is running on this host" in journal, journal
        assert not (host.data / "pods/run").exists() or os.listdir(host.data / "pods/run") == []
    finally:
        nspod("stop", ran.stdout.strip())


def test_of_pods_started_at_once_under_one_name_one_runs_and_the_rest_leave_nothing(
    tmp_path: Path,
    bb: Path,  # noqa: F811
) -> None:
    nspod = Nspod(tmp_path / "data")
    before, winners = leases(), []
    try:
        for round in range(3):
            argv = ("run", "--detach", f"--name=race{round}", str(bb), "--exec=/bin/sleep", "--", "600")
            with ThreadPoolExecutor(3) as pool:
                runs = list(pool.map(lambda args: nspod(*args), [argv] * 3))
            won = [r for r in runs if r.returncode == 0]
            assert len(won) == 1, [(r.returncode, r.stderr) for r in runs]
            winners.append(won[0].stdout.strip())
            for lost in (r for r in runs if r.returncode != 0):
                assert lost.returncode == 2 and lost.stdout == "", lost.stderr
                assert "race" in lost.stderr.splitlines()[0] and len(lost.stderr.splitlines()) == 2, (
                    lost.stderr
                )
        pods = {p["uuid"]: p["state"] for p in json.loads(nspod("list", "--full", "--format=json").stdout)}
        assert pods == dict.fromkeys(winners, "running"), pods
        assert len(leases() - before) == 3  # the winners' addresses alone
        assert list((tmp_path / "data/pods/.names").iterdir()) == []  # no lock file left per name
    finally:
        for uuid in winners:
            nspod("stop", uuid)
