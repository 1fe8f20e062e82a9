"""A CRI container's log file, stats and live resource updates, against a real systemd: apps
with a log path added to a running app sandbox (what CreateContainer does, through the domain
API), their output in kubelet's format the moment they have exited, a rotation, their
cgroup numbers, and new limits as live properties of their units."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from stage0.api.sandbox import add_app, remove_app
from stage0.cri import logs, resources, stats
from stage0.host import cgroups
from stage0.options import GlobalOptions, InsecureOption
from stage0.pods.dirs import Pods
from stage0.pods.requests import AppRequest
from tests.integration.test_app_sandbox import sandbox, wait_state  # noqa: F401 (a fixture)
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


@pytest.fixture
def nspod(tmp_path: Path) -> Nspod:
    return Nspod(tmp_path / "data")


def _add(nspod: Nspod, uuid: str, image: Path, name: str, script: str, log: Path) -> str:
    options = GlobalOptions(dir=str(nspod.data), insecure=frozenset({InsecureOption.IMAGE}))
    logs.create_log_file(str(log))
    request = AppRequest(image=str(image), name=name, exec="/bin/sh", args=("-c", script), log_path=str(log))
    added = add_app(options, uuid, request, pull_policy="new")
    started = nspod("app", "start", uuid, "--app", added)
    assert started.returncode == 0, started.stderr
    return added


def _wait(check: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_log_file_stats_and_updates(nspod: Nspod, sandbox: str, bb: Path, tmp_path: Path) -> None:  # noqa: F811
    machine = f"nspod-{sandbox}"
    log = tmp_path / "pods" / "talk" / "0.log"
    _add(nspod, sandbox, bb, "talk", "echo out; echo err >&2; printf partial", log)
    wait_state(nspod, sandbox, "talk", "exited")
    # whole as soon as the app is "exited" (its reaper waits for the writer): what critest reads
    assert logs.read_lines(str(log)) == [("stdout", b"out"), ("stderr", b"err"), ("stdout", b"partial")] or (
        sorted(logs.read_lines(str(log))) == [("stderr", b"err"), ("stdout", b"out"), ("stdout", b"partial")]
    )
    assert oct(log.stat().st_mode & 0o777) == "0o640"
    shown = nspod("logs", sandbox, "--app", "talk")
    assert "out" in shown.stdout and "partial" in shown.stdout, shown  # the journal still has it

    # a running container: rotated by kubelet's rule, its stats, its limits
    ticker = tmp_path / "pods" / "ticker" / "0.log"
    _add(nspod, sandbox, bb, "ticker", "while :; do echo tick; sleep 0.1; done", ticker)
    _wait(lambda: ticker.stat().st_size > 0)
    os.rename(ticker, str(ticker) + ".1")
    logs.reopen(str(ticker), running=True)
    assert ticker.exists()
    _wait(lambda: ticker.stat().st_size > 0)
    old = Path(str(ticker) + ".1").stat().st_size
    time.sleep(0.5)
    assert Path(str(ticker) + ".1").stat().st_size == old  # the writer moved on

    pod = Pods(str(nspod.data)).find(sandbox)
    sampled = stats.container_stats(pod.path, "ticker")
    assert sampled.cpu.usage.processes >= 1 and sampled.cpu.usage.cpu_ns > 0, sampled
    assert sampled.cpu.usage.working_set_bytes > 0 and sampled.writable_layer.inodes >= 0
    whole = stats.pod_stats(pod.path)
    assert whole.cpu.usage.processes >= 2 and whole.cpu.usage.cpu_ns > 0, whole

    options = GlobalOptions(dir=str(nspod.data))
    linux = SimpleNamespace(memory_limit_in_bytes=64 << 20, cpu_shares=512, cpu_period=100_000,
                            cpu_quota=50_000, cpuset_cpus="", cpuset_mems="", oom_score_adj=300)  # fmt: skip
    resources.update(options, pod.path, "ticker", linux)
    props = subprocess.run(
        ["systemctl", "-M", machine, "show", "ticker.service", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec",
         "-p", "CPUShares"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "MemoryMax=67108864" in props and "CPUQuotaPerSecUSec=500ms" in props and "CPUShares=512" in props
    group = stats.pod_group(pod.paths)
    service = cgroups.find_group(cgroups.ROOT, "ticker.service", below=group or "")
    assert service is not None
    scores = {
        Path(f"/proc/{p}/oom_score_adj").read_text().strip() for p in cgroups.pids("/sys/fs/cgroup", service)
    }
    assert scores == {"300"}

    remove_app(options, pod.uuid, "ticker")
    listing = ["systemctl", "-M", machine, "list-units", "--all", "--plain", "--no-legend", "cri-log-*"]
    units = subprocess.run(listing, capture_output=True, text=True).stdout
    assert "cri-log-ticker" not in units
    leader = subprocess.run(["machinectl", "show", machine, "-p", "Leader", "--value"],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert "/nspod/crilog/ticker" not in Path(f"/proc/{leader}/mountinfo").read_text()
