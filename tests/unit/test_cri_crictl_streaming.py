"""The streaming server against the real Go client: crictl 1.26 (client-go's SPDY executor and
port forwarder, moby/spdystream) through a stub RuntimeService, with containers that are host
processes (tests/harness/cri_stub.py). The same server in a pod: tests/integration/test_cri_streaming.py."""

from __future__ import annotations

import contextlib
import fcntl
import http.server
import os
import pty
import re
import socket
import struct
import subprocess
import termios
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.cri.streaming import Container, StreamingServer
from stage0.cri.streaming.remotecommand import Running
from tests.harness.terminal import in_terminal

CRICTL = "/var/cache/nspod-tests/cri/crictl"

pytestmark = pytest.mark.skipif(not os.access(CRICTL, os.X_OK), reason=f"no {CRICTL} (build-cri-tools.sh)")


class HostProcess:
    """A host command with the ends exec's Process gives (tty: a pty)."""

    def __init__(self, cmd: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.master = -1
        if tty:
            self.master, slave = pty.openpty()
            self.popen = subprocess.Popen(
                cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
            )
            os.close(slave)
            self.stdin: int | None = self.master if stdin else None
            self.stdout: int | None = self.master
            self.stderr: int | None = None
            return
        pipe = {True: subprocess.PIPE, False: subprocess.DEVNULL}
        self.popen = subprocess.Popen(cmd, stdin=pipe[stdin], stdout=pipe[stdout], stderr=pipe[stderr])
        self.stdin = self.popen.stdin.fileno() if self.popen.stdin else None
        self.stdout = self.popen.stdout.fileno() if self.popen.stdout else None
        self.stderr = self.popen.stderr.fileno() if self.popen.stderr else None

    def close_stdin(self) -> None:
        if self.master < 0 and self.popen.stdin:
            self.popen.stdin.close()

    def resize(self, width: int, height: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)


def spawn(
    container: Container, cmd: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool
) -> Running:
    return HostProcess(cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)


def host_exec_sync(container_id: str, cmd: list[str], timeout: float) -> tuple[bytes, bytes, int]:
    from stage0.cri.exec import ExecTimeout

    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout or None, check=False)
    except subprocess.TimeoutExpired:
        raise ExecTimeout(f"command timed out after {timeout:g} s") from None
    return done.stdout, done.stderr, done.returncode


@pytest.fixture(scope="module")
def crictl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], object]]:
    from tests.harness.cri_stub import HostBackend, serve

    where = tmp_path_factory.mktemp("cri")
    (where / "crictl.yaml").write_text("")
    backend = HostBackend()
    streaming = StreamingServer("127.0.0.1", 0, backend, spawn=spawn)
    streaming.start()
    server = serve(str(where / "cri.sock"), streaming, host_exec_sync)
    argv = [CRICTL, "--config", str(where / "crictl.yaml"), "-r", f"unix://{where}/cri.sock", "-t", "10s"]
    yield argv, backend
    server.stop(0)
    streaming.stop()


def run(argv: list[str], *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*argv, *args], input=data, capture_output=True, timeout=60, check=False)


def test_exec_sync_returns_output_and_exit_code(crictl: tuple[list[str], object]) -> None:
    done = run(crictl[0], "exec", "-s", "c1", "sh", "-c", "echo out; echo err >&2")
    assert (done.stdout, done.returncode) == (b"out\n\nerr\n\n", 0)  # crictl prints both, a line after each
    done = run(crictl[0], "exec", "-s", "c1", "sh", "-c", "echo err >&2; exit 3")
    assert done.returncode == 1 and b"exited with 3: err" in done.stderr


def test_exec_streams_stdout_stderr_and_the_exit_code(crictl: tuple[list[str], object]) -> None:
    done = run(crictl[0], "exec", "c1", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (done.stdout, done.returncode) == (b"out\n", 1), done.stderr
    assert done.stderr.startswith(b"err\n") and b"command terminated with exit code 3" in done.stderr


def test_exec_with_stdin_and_more_output_than_one_window(crictl: tuple[list[str], object]) -> None:
    data = os.urandom(300_000)
    done = run(crictl[0], "exec", "-i", "c1", "sh", "-c", "cat; head -c 2000000 /dev/zero", data=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data + bytes(2_000_000)


def test_exec_of_a_stopped_container_fails_with_the_reason(crictl: tuple[list[str], object]) -> None:
    done = run(crictl[0], "exec", "missing", "true")
    assert done.returncode != 0 and b"container missing is not running" in done.stderr


def test_exec_with_a_tty_follows_the_terminal_size(crictl: tuple[list[str], object]) -> None:
    argv = [*crictl[0], "exec", "-i", "-t", "c1", "sh", "-c", "sleep 0.5; stty size; tty"]
    output, code = in_terminal(argv, size=(33, 111), timeout=30)
    assert b"33 111" in output and b"/dev/pts/" in output, output
    assert code == 0


def test_port_forward_reaches_the_sandboxs_port(crictl: tuple[list[str], object]) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"welcome " * 20000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local = probe.getsockname()[1]
    forward = subprocess.Popen(
        [*crictl[0], "port-forward", "sb1", f"{local}:{web.server_address[1]}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        assert re.search(rb"Forwarding from 127.0.0.1:\d+", line), line
        for _ in range(3):  # a connection each: one SPDY session carries them all
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=20) as reply:
                assert reply.read() == b"welcome " * 20000
    finally:
        forward.terminate()
        forward.wait(10)
        web.shutdown()


def test_attach_relays_stdin_and_stdout(crictl: tuple[list[str], object]) -> None:
    from tests.harness.cri_stub import HostBackend

    backend = crictl[1]
    assert isinstance(backend, HostBackend)
    shell = subprocess.Popen(["sh"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    backend.shells["c2"] = shell
    done = run(crictl[0], "attach", "-i", "c2", data=b"echo hello\n")
    with contextlib.suppress(ProcessLookupError):
        shell.kill()
    shell.wait()
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello\n"


def test_tokens_are_good_once(crictl: tuple[list[str], object], tmp_path: Path) -> None:
    from tests.harness.cri_stub import HostBackend

    assert isinstance(crictl[1], HostBackend)
    streaming = StreamingServer("127.0.0.1", 0, crictl[1], spawn=spawn)
    streaming.start()
    try:
        from stage0.cri.streaming.backend import ExecRequest

        url = streaming.exec_url(ExecRequest("c1", ("true",)))
        for _ in range(2):
            request = urllib.request.Request(url, method="POST", headers={"Upgrade": "SPDY/3.1"})
            with pytest.raises(urllib.error.HTTPError) as failure:
                urllib.request.urlopen(request, timeout=10)
            assert failure.value.code in (403, 404)  # the first: no protocol offered; then: used up
    finally:
        streaming.stop()
