"""CRI exec and port-forward in a real pod (issue #24, item 5): ExecSync and Exec run through
stage1's enter path, so the command keeps the app's confinement; a timeout kills the command in
the pod; port-forward reaches a port on the pod's own loopback. The real crictl 1.26 drives the
streaming server through the stub RuntimeService (tests/harness/cri_stub.py)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from stage0.cri.exec import ExecTimeout, exec_sync
from stage0.cri.streaming import AttachIO, Container, StreamingServer
from stage0.errors import Error
from stage1.poddir import load
from tests.harness.terminal import in_terminal
from tests.integration.test_pods import APPLETS, Nspod, busybox_image

pytestmark = pytest.mark.systemd
CRICTL = "/var/cache/nspod-tests/cri/crictl"
CAP_NET_BIND_SERVICE = 1 << 10


class PodBackend:
    """The one pod of this test as the CRI sees it: container "web", sandbox "sb"."""

    def __init__(self, pod_dir: str, machine: str) -> None:
        self.pod_dir, self.machine = pod_dir, machine

    def container(self, container_id: str) -> Container:
        if container_id != "web":
            raise Error(f"container {container_id} not found", hint="list them")
        return Container(self.pod_dir, "bb")

    def sandbox_netns(self, sandbox_id: str) -> str | None:
        leader = subprocess.run(
            ["machinectl", "show", "--property=Leader", "--value", self.machine],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return f"/proc/{leader}/ns/net"

    def attach(self, container_id: str, io: AttachIO) -> None:
        raise Error("attach is the runtime's", hint="see tests/unit/test_cri_crictl_streaming.py")


@pytest.fixture(scope="module")
def pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodBackend]:
    base = tmp_path_factory.mktemp("cristream")
    www = base / "layout/rootfs/www"
    www.mkdir(parents=True)
    (www / "index.html").write_text("served from inside the pod\n")
    app = {"exec": ["/bin/httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/www"], "user": "0", "group": "0"}
    image = busybox_image(base, app=app, applets=(*APPLETS, "httpd", "stty", "head", "grep"))
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=cristream", str(image), "--caps-retain=CAP_NET_BIND_SERVICE")
    assert ran.returncode == 0, ran.stderr
    try:
        pods = json.loads(nspod("list", "--full", "--format", "json").stdout)
        uuid = pods[0]["uuid"]
        pod_dir = str(base / "data/pods/run" / uuid)
        yield PodBackend(pod_dir, load(pod_dir)[0].machine)
    finally:
        nspod("stop", "--force", "cristream")


def test_exec_sync_gives_output_and_exit_code(pod: PodBackend) -> None:
    out, err, code = exec_sync(pod.pod_dir, "bb", ["sh", "-c", "echo out; echo err >&2; exit 3"], 30)
    assert (out, err, code) == (b"out\n", b"err\n", 3)


def test_exec_keeps_the_apps_confinement(pod: PodBackend) -> None:
    out, _, code = exec_sync(
        pod.pod_dir, "bb", ["grep", "-E", "^(CapEff|CapBnd|Seccomp|NoNewPrivs):", "/proc/self/status"], 30
    )
    fields = dict(line.split(":\t") for line in out.decode().splitlines())
    assert code == 0 and int(fields["CapEff"], 16) == CAP_NET_BIND_SERVICE, fields
    assert int(fields["CapBnd"], 16) == CAP_NET_BIND_SERVICE and fields["Seccomp"] == "2", fields


def test_exec_sync_timeout_kills_the_command_in_the_pod(pod: PodBackend) -> None:
    started = time.monotonic()
    with pytest.raises(ExecTimeout):
        exec_sync(pod.pod_dir, "bb", ["sleep", "4321"], 1)
    assert time.monotonic() - started < 20
    cmdlines = "for p in /proc/[0-9]*; do cat $p/cmdline; echo; done"
    out, _, _ = exec_sync(pod.pod_dir, "bb", ["sh", "-c", cmdlines], 30)
    assert b"sleep\x004321" not in out


@pytest.fixture(scope="module")
def crictl(pod: PodBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    from tests.harness.cri_stub import serve

    where = tmp_path_factory.mktemp("cri")
    (where / "crictl.yaml").write_text("")
    streaming = StreamingServer("127.0.0.1", 0, pod)
    streaming.start()

    def sync(container_id: str, cmd: list[str], timeout: float) -> tuple[bytes, bytes, int]:
        found = pod.container(container_id)
        return exec_sync(found.pod_dir, found.app, cmd, timeout)

    server = serve(str(where / "cri.sock"), streaming, sync)
    yield [CRICTL, "--config", str(where / "crictl.yaml"), "-r", f"unix://{where}/cri.sock", "-t", "10s"]
    server.stop(0)
    streaming.stop()


def test_crictl_exec_sync_and_exec(crictl: list[str]) -> None:
    done = subprocess.run([*crictl, "exec", "-s", "web", "echo", "hello"], capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(b"hello\n"), done.stderr
    script = "cat; echo err >&2; exit 4"
    done = subprocess.run(
        [*crictl, "exec", "-i", "web", "sh", "-c", script], input=b"in", capture_output=True, timeout=60
    )
    assert done.stdout == b"in" and done.stderr.startswith(b"err\n"), done.stderr
    assert b"command terminated with exit code 4" in done.stderr
    done = subprocess.run(
        [*crictl, "exec", "-s", "--timeout", "1", "web", "sleep", "99"], capture_output=True, timeout=60
    )
    assert done.returncode != 0 and b"timed out" in done.stderr, done.stderr


def test_crictl_exec_with_a_tty(crictl: list[str]) -> None:
    argv = [*crictl, "exec", "-i", "-t", "web", "sh", "-c", "sleep 1; stty size; tty"]
    output, code = in_terminal(argv, size=(33, 111))
    assert b"33 111" in output and b"/dev/pts/" in output, output
    assert code == 0, output


def test_crictl_port_forward_reaches_the_pods_loopback(crictl: list[str], pod: PodBackend) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    forward = subprocess.Popen(
        [*crictl, "port-forward", "sb", f"{local}:8080"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        assert re.search(rb"Forwarding from 127.0.0.1:\d+", line), line
        with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html", timeout=30) as reply:
            assert reply.read() == b"served from inside the pod\n"
    finally:
        forward.terminate()
        forward.wait(10)
    with socket.socket() as host, pytest.raises(OSError):
        host.connect(("127.0.0.1", 8080))  # the pod's loopback is not the host's


def test_nothing_is_left_in_the_pod(pod: PodBackend) -> None:
    listing = ["systemctl", f"--machine={pod.machine}", "list-units", "--all", "--no-legend", "nspod-exec-*"]
    deadline = time.monotonic() + 15  # a command that just ended: its unit is still being torn down
    while (left := subprocess.run(listing, capture_output=True, text=True, check=False).stdout.strip()) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert left == "", left
