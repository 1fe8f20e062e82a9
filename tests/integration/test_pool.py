"""The warm pool against a real systemd: a keeper keeping spares booted, ``nspod run`` served by
one (output, exit code, the pod as list/status/logs show any pod), refills, runs it cannot serve
going cold, back-to-back and parallel runs, a keeper killed half-way leaving nothing after gc,
and ``nspod app start`` served by the keeper as the command would do it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@dataclass
class Pool:
    nspod: Nspod
    socket: str
    unit: str

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.nspod(*args, env={"NSPOD_POOL_SOCKET": self.socket}, **kwargs)  # type: ignore[arg-type]

    def spares(self) -> list[str]:
        return self.nspod("pool", "list").stdout.split()

    def wait_spares(self, count: int = 1, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(found := self.spares()) < count:
            assert time.monotonic() < deadline, f"no {count} spares after {timeout}s"
            time.sleep(0.1)
        return found

    def keeper_pid(self) -> int:
        shown = subprocess.run(["systemctl", "show", self.unit, "-p", "MainPID", "--value"],
                               capture_output=True, text=True, check=True)  # fmt: skip
        return int(shown.stdout.strip())


def start_keeper(nspod: Nspod, socket: str, unit: str, size: int) -> None:
    keep = nspod.argv("pool", "keep", "--size", str(size), "--socket", socket)
    subprocess.run(
        ["systemd-run", f"--unit={unit}", "--collect", "-p", "KillMode=process",
         f"--setenv=PYTHONPATH={REPO}", *keep],
        check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    nspod = Nspod(tmp_path / "data")
    socket, unit = str(tmp_path / "pool.sock"), f"nspod-pool-test-{os.getpid()}.service"
    start_keeper(nspod, socket, unit, 1)
    made = Pool(nspod, socket, unit)
    yield made
    subprocess.run(["systemctl", "stop", unit], capture_output=True)
    for uuid in made.spares():
        nspod("stop", uuid)
    nspod("gc", "--grace-period=0s")
    for pod in json.loads(nspod("list", "--all", "--format=json").stdout or "[]"):
        if pod["state"] == "running":
            nspod("stop", pod["uuid"], "--force")


def test_a_pooled_run_is_a_pod_like_any_other(pool: Pool, bb: Path) -> None:  # noqa: F811
    image = pool.nspod("fetch", str(bb)).stdout.strip()
    spare = pool.wait_spares()[0]
    ran = pool.run(
        "run", image, "--exec", "/bin/sh", "--", "-c", "echo pooled-out; echo pooled-err >&2; exit 7"
    )
    assert ran.returncode == 7, ran.stderr
    assert "pooled-out" in ran.stdout and "pooled-err" in ran.stderr and "pooled-out" not in ran.stderr
    assert spare not in pool.spares()  # it served this run, and no other
    deadline = time.monotonic() + 20
    while (status := pool.nspod.status(spare))["state"] != "exited":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert status["app-bb"] == "7"
    listed = {p["uuid"]: p for p in json.loads(pool.nspod("list", "--format=json").stdout)}
    assert [a["name"] for a in listed[spare]["apps"]] == ["bb"]
    assert json.loads(pool.nspod("cat-manifest", spare).stdout)["apps"][0]["name"] == "bb"
    logs = pool.nspod("logs", spare)
    assert "pooled-out" in logs.stdout and "pooled-err" in logs.stderr  # streams apart, as a cold run's
    # the pool refills with a new spare
    refilled = pool.wait_spares()
    assert spare not in refilled


def test_runs_the_pool_cannot_serve_go_cold(pool: Pool, bb: Path) -> None:  # noqa: F811
    image = pool.nspod("fetch", str(bb)).stdout.strip()
    spare = pool.wait_spares()[0]
    named = pool.run("run", "--name=coldpod", image, "--exec", "/bin/sh", "--", "-c", "echo cold; exit 3")
    assert named.returncode == 3 and "cold" in named.stdout, named.stderr
    missing = pool.run("run", "--pull-policy=never", "example.com/not-stored")
    assert missing.returncode != 0 and "example.com/not-stored" in missing.stderr
    bad = pool.run("run", image, "--bogus-flag")
    assert bad.returncode == 2 and "--bogus-flag" in bad.stderr
    assert pool.spares() == [spare]  # none of them took the spare


def test_back_to_back_and_parallel_runs(pool: Pool, bb: Path) -> None:  # noqa: F811
    image = pool.nspod("fetch", str(bb)).stdout.strip()
    served = set()
    for index in range(20):
        served.add(pool.wait_spares()[0])
        ran = pool.run("run", image, "--exec", "/bin/sh", "--", "-c", f"echo run-{index}; exit {index % 5}")
        assert ran.returncode == index % 5 and f"run-{index}" in ran.stdout, ran.stderr
    assert len(served) == 20  # a spare serves one pod
    pool.wait_spares()
    with ThreadPoolExecutor(4) as workers:  # one spare: one pooled, the others cold, all right
        results = list(workers.map(lambda i: pool.run("run", image, "--exec", "/bin/sh", "--", "-c",
                                                      f"echo par-{i}; exit {i}"), range(4)))  # fmt: skip
    for index, result in enumerate(results):
        assert result.returncode == index and f"par-{index}" in result.stdout, result.stderr


def test_a_keeper_killed_half_way_leaves_nothing_after_gc(pool: Pool, bb: Path) -> None:  # noqa: F811
    image = pool.nspod("fetch", str(bb)).stdout.strip()
    pool.wait_spares()
    assert pool.run("run", image, "--exec", "/bin/true").returncode == 0  # the keeper refills now
    deadline = time.monotonic() + 10
    data = pool.nspod.data / "pods/run"
    while not any((d / "pool.filling").exists() for d in data.iterdir()):  # caught making a spare
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(pool.keeper_pid(), signal.SIGKILL)
    time.sleep(1)
    gc = pool.nspod("gc", "--grace-period=0s")
    assert gc.returncode == 0, gc.stderr
    for pod in json.loads(pool.nspod("list", "--all", "--format=json").stdout):
        assert pod["state"] != "running" or pod["uuid"] in pool.spares(), pod  # no half-made spare runs
    assert not [d for d in data.iterdir() if (d / "pool.filling").exists()]


def booting_spare(pool: Pool, timeout: float = 30) -> str:
    """Wait for the moment a spare's unit is started and the spare not ready yet; its UUID."""
    deadline = time.monotonic() + timeout
    run = pool.nspod.data / "pods/run"
    while True:
        for pod in run.iterdir() if run.is_dir() else ():
            if (pod / "pool.filling").exists() and (pod / "started").exists():
                return pod.name
        assert time.monotonic() < deadline, "no spare booted"
        time.sleep(0.002)


def running(nspod: Nspod) -> set[str]:
    return {
        p["uuid"]
        for p in json.loads(nspod("list", "--all", "--format=json").stdout)
        if p["state"] == "running"
    }


def test_a_keeper_stopped_while_a_spare_boots_leaves_no_hidden_spare(pool: Pool) -> None:
    # #23 item 12: the keeper stopped (SIGTERM) as a spare boots finishes it: a spare pool list
    # shows, which drain stops; none runs that no pool verb sees
    booting = booting_spare(pool)
    subprocess.run(["systemctl", "stop", pool.unit], check=True)
    assert running(pool.nspod) <= set(pool.spares())
    assert booting in pool.spares()
    drained = pool.nspod("pool", "drain")
    assert drained.returncode == 0, drained.stderr
    assert booting in drained.stdout.split()
    assert running(pool.nspod) == set()


def test_drain_stops_a_spare_that_is_booting(pool: Pool) -> None:
    # #23 item 12: drain waits for a spare being made, then stops it with the ready ones
    booting = booting_spare(pool)
    drained = pool.nspod("pool", "drain")
    assert drained.returncode == 0, drained.stderr
    assert booting in drained.stdout.split()
    assert booting not in running(pool.nspod)


def test_a_keeper_restarted_while_spares_boot_keeps_its_size(pool: Pool, tmp_path: Path) -> None:
    # #23 item 12: restarted (or killed and started again) as a spare boots, the keeper made
    # spares beside the half-made ones it never saw: more pods than its size
    for index in range(4):
        booting_spare(pool)
        if index % 2:
            subprocess.run(["systemctl", "kill", "--signal=SIGKILL", pool.unit], check=True)
            deadline = time.monotonic() + 10
            while subprocess.run(["systemctl", "is-active", "--quiet", pool.unit]).returncode == 0:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            start_keeper(pool.nspod, pool.socket, pool.unit, 1)
        else:
            subprocess.run(["systemctl", "restart", pool.unit], check=True)
        pool.wait_spares()
        assert pool.nspod("pool", "drain").returncode == 0  # the keeper makes the next one
    pool.wait_spares()
    time.sleep(6)  # a keeper's round: every half-made spare stopped, no second spare made
    assert running(pool.nspod) == set(pool.spares()) and len(pool.spares()) == 1


def test_the_keeper_serves_app_start_as_the_command_would(pool: Pool, bb: Path) -> None:  # noqa: F811
    sandbox = pool.nspod("app", "sandbox", env={"NSPOD_POOL": "0"}).stdout.strip().splitlines()[-1]
    try:
        image = pool.nspod("fetch", str(bb)).stdout.strip()
        added = pool.nspod("app", "add", sandbox, image, "--name", "t", "--exec", "/bin/sh", "--", "-c",
                           "echo started-$$; exit 4")  # fmt: skip
        assert added.returncode == 0, added.stderr
        imports = {"PYTHONPROFILEIMPORTTIME": "1"}  # which modules the command line itself loaded
        for env in ({"NSPOD_POOL_SOCKET": pool.socket}, {"NSPOD_POOL": "0"}):
            started = pool.nspod("app", "start", sandbox, "--app", "t", env={**env, **imports})
            assert started.returncode == 0, started.stderr
            # served: the client alone, no CLI (stage0.cli) and no stage1 in this process
            assert ("stage0.cli" in started.stderr) == (env.get("NSPOD_POOL") == "0"), env
            deadline = time.monotonic() + 20
            while (app := json.loads(pool.nspod("app", "status", sandbox, "--app", "t",
                                                "--format=json").stdout))["state"] != "exited":  # fmt: skip
                assert time.monotonic() < deadline, app
                time.sleep(0.05)
            assert app["exit_code"] == 4, app
        # what goes wrong is said as the command says it, with its exit code
        for args in (("no-such-pod", "--app", "t"), (sandbox, "--app", "nope")):
            served = pool.run("app", "start", *args)
            cold = pool.nspod("app", "start", *args, env={"NSPOD_POOL": "0"})
            assert served.returncode == cold.returncode != 0, (served.stderr, cold.stderr)
            assert served.stderr == cold.stderr, (served.stderr, cold.stderr)
        # other app verbs stay the command line's own
        listed = pool.run("app", "list", sandbox, "--format=json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["name"] == "t", listed.stderr
    finally:
        pool.nspod("stop", sandbox)
