"""A CRI container's stdio through ``nspod cri`` itself: its stdout and stderr are FIFOs (an app
opens /dev/stderr, as nginx does), ``crictl attach -i`` to a shell with stdin_once, ``attach -i
-t`` to one on a terminal, a writer killed before attach (the app's stdin waits in its fd
store), and a log writer killed with SIGKILL in the middle of the output, which loses no line
and gives the app no SIGPIPE; the journal (``nspod logs``) has every line too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from stage0.cri import logs
from tests.harness.terminal import in_terminal
from tests.integration.test_cri import CRICTL, SOCKET, Cri, cri, wait_for  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd


def crictl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    argv = [str(CRICTL), "-r", f"unix://{SOCKET}", "-t", "60s", *args]
    return subprocess.run(argv, input=data, capture_output=True, timeout=90, check=False)


def _container(cri: Cri, pod: str, name: str, script: str, **stdio: bool) -> str:  # noqa: F811
    config = json.loads(Path(cri.container_config(name, script)).read_text())
    ctr = cri(
        "create", pod, cri.write(f"ctr-{name}-stdio.json", {**config, **stdio}), cri.sandbox_config("stdio")
    )
    cri("start", ctr.strip())
    return ctr.strip()


def _state(cri: Cri, ctr: str) -> dict[str, object]:  # noqa: F811
    status: dict[str, object] = json.loads(cri("inspect", ctr))["status"]
    return status


def _log(cri: Cri, name: str) -> list[tuple[str, bytes]]:  # noqa: F811
    path = cri.work / "logs" / "stdio" / f"{name}.log"
    return logs.read_lines(str(path)) if path.exists() else []


def _writer_pid(log_name: str) -> int | None:
    """The host PID of the log writer whose file is ``log_name``, if one runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"/nspod/bin/cri-log" in argv and any(a.endswith(log_name.encode()) for a in argv):
            return int(entry.name)
    return None


def test_stdio_attach_and_a_killed_writer(cri: Cri) -> None:  # noqa: F811
    pod = cri("runp", cri.sandbox_config("stdio")).strip()
    try:
        # the app's stdout and stderr are FIFOs: it can open /dev/stdout and /dev/stderr by name
        opened = _container(
            cri, pod, "opens", "echo to-stderr > /dev/stderr && echo to-stdout > /dev/stdout"
        )
        wait_for("exit", lambda: _state(cri, opened)["state"] == "CONTAINER_EXITED")
        assert _state(cri, opened)["exitCode"] == 0
        assert sorted(_log(cri, "opens")) == [("stderr", b"to-stderr"), ("stdout", b"to-stdout")]

        # attach -i to a shell with stdin_once: what we type runs; our stdin's end is the shell's
        shell = _container(cri, pod, "shell", "exec /bin/sh", stdin=True, stdin_once=True)
        wait_for("start", lambda: _state(cri, shell)["state"] == "CONTAINER_RUNNING")
        # its writer killed first: the app's stdin connection waits in the writer's fd store
        killed = _writer_pid("shell.log")
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_for("a new writer", lambda: _writer_pid("shell.log") not in (None, killed))
        done = crictl("attach", "-i", shell, data=b"echo hello from $GREETING\necho oops >&2\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout == b"hello from hi\n" and b"oops" in done.stderr, done
        wait_for("exit", lambda: _state(cri, shell)["state"] == "CONTAINER_EXITED")
        assert sorted(_log(cri, "shell")) == [("stderr", b"oops"), ("stdout", b"hello from hi")]

        # attach -i -t: the app's stdio is a terminal; attach ends when the container does
        script = "for i in 1 2 3 4 5 6; do test -t 0 && test -t 1 && echo on-a-tty-$i; sleep 0.5; done"
        tty = _container(cri, pod, "tty", script, stdin=True, tty=True)
        output, code = in_terminal([str(CRICTL), "-r", f"unix://{SOCKET}", "attach", "-i", "-t", tty])
        assert code == 0 and b"on-a-tty-6" in output, output
        wait_for("exit", lambda: _state(cri, tty)["state"] == "CONTAINER_EXITED")
        assert ("stdout", b"on-a-tty-6") in _log(cri, "tty")

        # the writer killed mid-output: it comes back and reads on; the FIFO kept every line
        every = "[ $((i % 100)) = 0 ] && sleep 0.1"
        script = f"i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); {every}; done"
        counted = _container(cri, pod, "counted", script)
        wait_for("output", lambda: len(_log(cri, "counted")) > 100)
        first = _writer_pid("counted.log")
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for("exit", lambda: _state(cri, counted)["state"] == "CONTAINER_EXITED", timeout=60)
        assert _state(cri, counted)["exitCode"] == 0  # no SIGPIPE
        assert [text for _, text in _log(cri, "counted")] == [b"line-%d" % i for i in range(3000)]
        journal = cri.nspod("logs", pod)  # the writer passes every line on to the journal as the app's
        assert "hello from hi" in journal and "to-stderr" in journal and "line-2999" in journal
        for ctr in (opened, shell, tty, counted):
            cri("rm", ctr)
    finally:
        cri("stopp", pod)
        cri("rmp", pod)
