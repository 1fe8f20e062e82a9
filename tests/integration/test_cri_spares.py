"""The CRI's warm pool against a real systemd (stage0/cri/warm.py): ``nspod cri`` with ``[cri]
spares = 1`` boots a spare, a plain RunPodSandbox gets that very pod, a sandbox with port
mappings boots cold, and a server restarted with no spares wanted stops the one it had left ready;
a kubelet's sandbox (host name, DNS, labels, annotations, log directory) gets a spare dressed as
it asked, which its container sees exactly as in a sandbox of that request booted cold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from stage0.cri.proto import api_pb2, api_pb2_grpc
from tests.harness.registry import Layout, Registry

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

    def run_sandbox(self, name: str, **fields: Any) -> str:
        metadata = api_pb2.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="spares")
        config = api_pb2.PodSandboxConfig(metadata=metadata, linux=api_pb2.LinuxPodSandboxConfig(), **fields)
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
        ports = [api_pb2.PortMapping(container_port=80, host_port=18080)]
        named = server.run_sandbox("named", hostname="web-0", port_mappings=ports)  # booted cold
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


def kubelets(name: str, work: Path) -> dict[str, Any]:
    """What a kubelet sends for a pod: host name, cluster DNS, labels, annotations, log directory."""
    dns = api_pb2.DNSConfig(
        servers=["10.96.0.10"], searches=["spares.svc.cluster.local", "cluster.local"], options=["ndots:5"]
    )
    return {
        "hostname": "web-0",
        "dns_config": dns,
        "labels": {"app": "web", "io.kubernetes.pod.name": name},
        "annotations": {"kubernetes.io/config.source": "api", "team": "web"},
        "log_directory": str(work / "logs" / name),
    }


def seen(server: Server, sandbox: str, image: str) -> tuple[str, str, str]:
    """What a container of the sandbox sees (host name, /etc/hostname, resolv.conf), and the
    sandbox's verbose status' host name and resolv.conf."""
    config = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="probe"),
        image=api_pb2.ImageSpec(image=image),
        command=["/bin/sleep", "60"],
        log_path="probe.log",
    )
    runtime = server.runtime
    created = runtime.CreateContainer(
        api_pb2.CreateContainerRequest(pod_sandbox_id=sandbox, config=config), timeout=60
    )
    runtime.StartContainer(api_pb2.StartContainerRequest(container_id=created.container_id), timeout=60)
    script = "hostname; cat /etc/hostname; echo ---; cat /etc/resolv.conf"
    done = runtime.ExecSync(
        api_pb2.ExecSyncRequest(
            container_id=created.container_id, cmd=["/bin/sh", "-c", script], timeout=30
        ),
        timeout=60,
    )
    status = runtime.PodSandboxStatus(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sandbox, verbose=True), timeout=60
    )
    info = json.loads(status.info["info"])
    return done.stdout.decode() + done.stderr.decode(), info["hostname"], info["resolv_conf"]


def on_disk(work: Path, sandbox: str) -> tuple[dict[str, Any], list[Any]]:
    """The pod's spec (but its apps) and its manifest's annotations, but for what names the pod."""
    pod = work / "data/pods/run" / sandbox
    spec = json.loads((pod / "pod.json").read_text())
    spec = {k: v for k, v in spec.items() if k not in ("uuid", "machine", "apps")}
    annotations = json.loads((pod / "pod").read_text())["annotations"]
    return spec, [a for a in annotations if a["name"] != "nspod.io/machine"]


def test_a_kubelets_sandbox_is_a_dressed_spare(work: Path) -> None:
    registry = Registry.start(work / "registry")
    try:
        layout = Layout(work / "layout")
        layout.busybox("busybox", applets=("sh", "cat", "echo", "hostname", "sleep"))
        image = f"{registry.host}/busybox:latest"
        layout.push("busybox", image)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-m", "stage0", "--dir", str(work / "data"), "--insecure-options=image,http"]
        fetched = subprocess.run(
            [*argv, "fetch", f"docker://{image}"], capture_output=True, env=env, timeout=180
        )
        assert fetched.returncode == 0, fetched.stderr
    finally:
        registry.stop()
    server = Server(work, spares=0)  # the same request booted cold: what the claimed spare must match
    try:
        cold = server.run_sandbox("cold", **kubelets("cold", work))
        expected = seen(server, cold, image)
    finally:
        server.stop()
    assert "web-0\n" in expected[0] and "nameserver 10.96.0.10" in expected[0], expected
    server = Server(work, spares=1)
    try:
        until("a spare booted", lambda: server.marked("cri.ready"))
        (spare,) = server.marked("cri.ready")
        start = time.perf_counter()
        warm = server.run_sandbox("warm", **kubelets("warm", work))
        claimed_in = time.perf_counter() - start
        assert warm == spare and spare not in server.marked("cri.ready")
        assert server.marked("cri.taken") == [spare]
        assert claimed_in < 2.0, claimed_in
        assert seen(server, warm, image) == expected
        assert on_disk(work, warm) == on_disk(work, cold)  # what app add, list and inspect read
    finally:
        server.stop()
    server = Server(work, spares=0)  # its state reloaded from disk: as claimed
    try:
        status = server.runtime.PodSandboxStatus(
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=warm, verbose=True), timeout=60
        )
        assert dict(status.status.labels) == kubelets("warm", work)["labels"]
        assert dict(status.status.annotations) == kubelets("warm", work)["annotations"]
        info = json.loads(status.info["info"])
        assert (info["hostname"], info["resolv_conf"]) == expected[1:]
        for each in (cold, warm):
            server.remove_sandbox(each)
    finally:
        server.stop()
