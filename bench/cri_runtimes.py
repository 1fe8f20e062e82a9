"""bench/cri's runtimes and their inputs: the images in a local registry, Debian's containerd 1.6 +
runc with a config of its own, and ``nspod cri`` on a socket of its own — each stopped by PID.

Everything lives under the bench's work directory (/var/tmp), the sockets and containerd's state
under /run, which a test host has to itself; no traffic leaves 127.0.0.1 and the pods' bridge.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.harness.registry import Layout, Registry  # noqa: E402

# Kubernetes' pause, in short: PID 1 of the sandbox, reaps, ends on SIGINT/SIGTERM
PAUSE_C = r"""
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void die(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
    struct sigaction stop = {.sa_handler = die}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGCHLD, &child, NULL);
    for (;;) pause();
}
"""

CONTAINERD_TOML = """version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # the test host may not lower an oom_score_adj (the pause's -998): kind runs containerd so too
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"""


# one bridge inside the test host for either runtime's pods (host-local addresses, no gateway out)
def cni_conflist(name: str, bridge: str, subnet: str) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": subnet}]],
                        "dataDir": f"/run/cni-bench/{name}",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=1,
    )


class Images:
    """busybox (``BUSYBOX``) and a pause image (``PAUSE``) in a local registry."""

    def __init__(self, work: Path) -> None:
        self.registry = Registry.start(work / "registry")
        layout = Layout(work / "layout")
        layout.busybox("busybox", applets=("sh", "true", "sleep", "echo", "cat", "ls"))
        layout.config("busybox", "--config.cmd=/bin/sh")
        layout.push("busybox", f"{self.registry.host}/bench/busybox:1")
        pause = work / "pause"
        (work / "pause.c").write_text(PAUSE_C)
        subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(pause), str(work / "pause.c")], check=True)
        layout.new("pause")
        bundle = layout.dir / "bundle-pause"
        subprocess.run(["umoci", "unpack", "--image", f"{layout.path}:pause", str(bundle)],
                       check=True, capture_output=True)  # fmt: skip
        shutil.copy(pause, bundle / "rootfs/pause")
        subprocess.run(["umoci", "repack", "--image", f"{layout.path}:pause", str(bundle)],
                       check=True, capture_output=True)  # fmt: skip
        shutil.rmtree(bundle)
        layout.config("pause", "--config.entrypoint=/pause", "--config.user=65535:65535")
        layout.push("pause", f"{self.registry.host}/bench/pause:1")
        self.busybox = f"{self.registry.host}/bench/busybox:1"
        self.pause = f"{self.registry.host}/bench/pause:1"

    def stop(self) -> None:
        self.registry.stop()


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"{what} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Containerd:
    """containerd with its CRI plugin, the pods' runtime runc (its v2 shim), pods on a CNI bridge."""

    def __init__(self, work: Path, images: Images) -> None:
        self.dir = work / "containerd"
        self.state = Path("/run/containerd-bench")
        self.socket = self.state / "containerd.sock"
        cni = self.dir / "cni"
        cni.mkdir(parents=True)
        (cni / "10-bench.conflist").write_text(cni_conflist("containerd-bench", "ctrd0", "10.88.0.0/16"))
        config = self.dir / "config.toml"
        config.write_text(
            CONTAINERD_TOML.format(
                root=self.dir / "root",
                state=self.state,
                socket=self.socket,
                pause=images.pause,
                cni=cni,
                registry=images.registry.host,
            )
        )
        self.log = self.dir / "log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_socket(self.socket, self.process, self.log, "containerd")

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def stop(self) -> None:
        # the shims outlive containerd by design: every sandbox was removed before this
        stop(self.process)
        shutil.rmtree(self.state, ignore_errors=True)
        # runc (cgroupfs) made its pods' cgroups below k8s.io in every hierarchy, outside the test
        # host's own subtree, and removed only theirs: the empty parent goes too
        for parent in Path("/sys/fs/cgroup").glob("*/k8s.io"):
            with contextlib.suppress(OSError):
                parent.rmdir()


class Nspod:
    """``nspod cri`` on a socket, a data directory and a configuration of its own. ``pool``: it
    keeps one spare sandbox booted (``[cri] spares = 1``), which RunPodSandbox claims; without,
    every sandbox boots cold."""

    def __init__(self, work: Path, name: str, nspod: list[str], registry: str, *, pool: bool) -> None:
        self.nspod, self.data, self.config = nspod, work / name / "data", work / name / "config"
        self.pool = pool
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.mkdir(parents=True, exist_ok=True)
        # kubelet cannot pass --insecure-options: the CRI's pulls read registries.conf
        (self.config / "registries.conf").write_text(f"insecure = {registry}\n")
        (self.config / "nspod.conf").write_text(f"[cri]\nspares = {int(pool)}\n")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.socket = Path(f"/run/nspod-bench/{name}.sock")
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.log = work / name / "log"
        argv = [*self.base, "cri", "--listen", str(self.socket)]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        wait_for_socket(self.socket, self.process, self.log, f"nspod cri ({name})")

    @property
    def base(self) -> list[str]:
        return [*self.nspod, "--dir", str(self.data), "--local-config", str(self.config)]

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def fetch(self, reference: str) -> None:
        """The image into the store without the CRI (an nspod whose image service is not there)."""
        argv = [*self.base, "--insecure-options=image,http", "fetch", f"docker://{reference}"]
        subprocess.run(argv, check=True, capture_output=True)

    def spares(self) -> int:
        return len(list(self.data.glob("pods/run/*/cri.ready")))

    def stop(self) -> None:
        stop(self.process)
        for pod in self.data.glob("pods/run/*"):  # the spares outlive the server by design
            subprocess.run([*self.base, "stop", pod.name], capture_output=True)
        subprocess.run([*self.base, "gc", "--grace-period=0s"], capture_output=True)
