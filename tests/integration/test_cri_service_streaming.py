"""Exec and port-forward through ``nspod cri`` itself (its socket unit, this checkout's code): the
part of a kubelet's day that is cristream's — ``crictl exec -s``, ``exec -i``, ``exec -i -t``,
``port-forward`` — against a real sandbox and container, and the refusals of a stopped one."""

from __future__ import annotations

import socket
import subprocess

import pytest

from tests.harness.terminal import in_terminal
from tests.integration.test_cri import CRICTL, SOCKET, Cri, cri, wait_for  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


def crictl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    argv = [str(CRICTL), "-r", f"unix://{SOCKET}", "-t", "60s", *args]
    return subprocess.run(argv, input=data, capture_output=True, timeout=90, check=False)


def with_terminal(*args: str) -> bytes:
    return in_terminal([str(CRICTL), "-r", f"unix://{SOCKET}", "-t", "60s", *args])[0]


def test_exec_and_port_forward_through_the_service(cri: Cri) -> None:  # noqa: F811
    pod = cri("runp", cri.sandbox_config("streams")).strip()
    serve = "while true; do echo hello-forward | nc -l -p 8080; done"
    ctr = cri("create", pod, cri.container_config("streams", serve), cri.sandbox_config("streams")).strip()
    cri("start", ctr)
    try:
        done = crictl("exec", "-s", ctr, "echo", "hello")
        assert done.returncode == 0 and done.stdout.startswith(b"hello\n"), done.stderr
        done = crictl("exec", "-s", "--timeout", "1", ctr, "sleep", "30")
        assert done.returncode != 0 and b"DeadlineExceeded" in done.stderr, done.stderr

        done = crictl("exec", "-i", ctr, "sh", "-c", "cat; exit 5", data=b"through stdin")
        assert done.stdout == b"through stdin" and b"exit code 5" in done.stderr, done.stderr
        output = with_terminal("exec", "-i", "-t", ctr, "sh", "-c", "test -t 0 && echo on-a-tty")
        assert b"on-a-tty" in output, output

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        forward = subprocess.Popen(
            [str(CRICTL), "-r", f"unix://{SOCKET}", "port-forward", pod, f"{local}:8080"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert forward.stdout is not None
            assert b"Forwarding from" in forward.stdout.readline()
            with socket.create_connection(("127.0.0.1", local), timeout=30) as conn:
                assert conn.recv(100) == b"hello-forward\n"
        finally:
            forward.terminate()
            forward.wait(10)
    finally:
        cri("stop", "--timeout", "0", ctr)
    stopped = crictl("exec", "-s", ctr, "true")
    assert stopped.returncode != 0 and b"FailedPrecondition" in stopped.stderr, stopped.stderr
    streamed = crictl("exec", ctr, "true")
    assert streamed.returncode != 0 and b"not running" in streamed.stderr, streamed.stderr
    cri("rm", ctr)
    cri("stopp", pod)
    cri("rmp", pod)
