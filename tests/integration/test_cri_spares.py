"""The CRI's warm pool against a real systemd (stage0/cri/warm.py): ``nspod cri`` with ``[cri]
spares = 1`` boots a spare, a plain RunPodSandbox gets that very pod, a sandbox with a host name
boots cold, and a server restarted with no spares wanted stops the one it had left ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from stage0.cri.proto import api_pb2, api_pb2_grpc

pytestmark = pytest.mark.systemd
REPO = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, work: Path, spares: int) -> None:
        self.work, self.data, self.config = work, work / "data", work / "config"
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "nspod.conf").write_text(f"[cri]\nspares = {spares}\n")
        self.socket = work / "cri.sock"
        argv = [sys.executable, "-m", "stage0", *self.flags, "cri", "--listen", str(self.socket)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("NSPOD_POOL", None)
        self.log = open(work / f"log-{spares}", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def flags(self) -> list[str]:
        return ["--dir", str(self.data), "--local-config", str(self.config)]

    def marked(self, marker: str) -> list[str]:
        return sorted(p.parent.name for p in self.data.glob(f"pods/run/*/{marker}"))

    def run_sandbox(self, name: str, hostname: str = "") -> str:
        metadata = api_pb2.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="spares")
        config = api_pb2.PodSandboxConfig(
            metadata=metadata, hostname=hostname, linux=api_pb2.LinuxPodSandboxConfig()
        )
        reply = self.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config), timeout=120)
        return str(reply.pod_sandbox_id)

    def remove_sandbox(self, ident: str) -> None:
        self.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=ident), timeout=120)
        self.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=ident), timeout=120)

    def stop(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)
        self.log.close()


def until(what: str, check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not in {timeout:g} s: {what}"
        time.sleep(0.1)


@pytest.fixture
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    work = tmp_path_factory.mktemp("cri-spares", numbered=True)
    yield work
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [sys.executable, "-m", "stage0", "--dir", str(work / "data")]
    for pod in (work / "data").glob("pods/run/*"):
        subprocess.run([*base, "stop", "--force", pod.name], capture_output=True, env=env, timeout=120)
    subprocess.run([*base, "gc", "--grace-period=0s"], capture_output=True, env=env, timeout=120)


def test_a_plain_sandbox_is_a_booted_spare(work: Path) -> None:
    server = Server(work, spares=1)
    try:
        until("a spare booted", lambda: server.marked("cri.ready"))
        (spare,) = server.marked("cri.ready")
        start = time.perf_counter()
        ident = server.run_sandbox("plain")
        claimed_in = time.perf_counter() - start
        assert ident == spare
        assert server.marked("cri.taken") == [spare]
        assert claimed_in < 2.0, claimed_in  # a boot takes longer on any machine
        named = server.run_sandbox("named", hostname="web-0")  # another shape: booted cold
        assert named != spare and named not in server.marked("cri.taken")
        for each in (ident, named):
            server.remove_sandbox(each)
        assert not (work / "data/pods/run" / spare).exists()
        until("the next spare", lambda: server.marked("cri.ready"))
    finally:
        server.stop()
    (left,) = server.marked("cri.ready")  # kept for the next server
    server = Server(work, spares=0)
    try:
        until("the unwanted spare stopped", lambda: not (work / "data/pods/run" / left).exists())
    finally:
        server.stop()
