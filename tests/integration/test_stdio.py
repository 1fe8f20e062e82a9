"""A foreground pod's stdio (issue #9, one CLI contract): the app's stdout to nspod's stdout and
its stderr to nspod's stderr, apart; nspod's stdin to a one-app pod (``--interactive``, byte for
byte, with its end); the caller's terminal as the app's (``--tty``); every line in the journal
for ``nspod logs``, whose ``--app`` works after the pod ended too."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb, nspod  # noqa: F401  (fixtures)

pytestmark = pytest.mark.systemd
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
CYCLES = int(os.environ.get("NSPOD_STDIO_CYCLES", "20"))


def run_bytes(nspod: Nspod, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:  # noqa: F811
    return subprocess.run(nspod.argv("run", *args), input=stdin, capture_output=True, env=ENV, timeout=120)


def test_stdout_and_stderr_go_apart(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    script = "echo out; echo err >&2; echo more; printf partial"
    result = run_bytes(nspod, str(bb), "--exec=/bin/sh", "--", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"bb: out\nbb: more\nbb: partial\n"  # labelled lines, the last one ended
    assert result.stderr == b"bb: err\n"
    # interactive, the app's output is the caller's, byte for byte
    result = run_bytes(nspod, "-i", str(bb), "--exec=/bin/sh", "--", "-c", script)
    assert (result.stdout, result.stderr) == (b"out\nmore\npartial", b"err\n")


def test_interactive_passes_stdin_byte_for_byte_and_its_end(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than any socket buffer: paced both ways
    result = run_bytes(nspod, "--interactive", str(bb), "--exec=/bin/cat", stdin=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data
    counted = run_bytes(nspod, "-i", str(bb), "--exec=/bin/sh", "--", "-c", "wc -l; exit 4", stdin=b"a\nb\n")
    assert (counted.returncode, counted.stdout.split()) == (4, [b"2"]), counted.stderr


def test_without_interactive_stdin_is_empty(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    result = run_bytes(nspod, str(bb), "--exec=/bin/sh", "--", "-c", "wc -c", stdin=b"not for the app")
    assert result.stdout.split() == [b"bb:", b"0"], result.stderr


def test_several_apps_label_their_lines_on_both_streams(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    result = run_bytes(
        nspod,
        str(bb), "--name=one", "--exec=/bin/sh", "--", "-c", "echo a; echo a-err >&2", "---",
        str(bb), "--name=two", "--exec=/bin/sh", "--", "-c", "echo b; echo b-err >&2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [b"one: a", b"two: b"]
    assert sorted(result.stderr.splitlines()) == [b"one: a-err", b"two: b-err"]


def test_logs_keep_the_streams_apart_after_the_pod_ended(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    result = run_bytes(
        nspod, "--name=logged", str(bb), "--exec=/bin/sh", "--", "-c", "echo out; echo err >&2"
    )
    assert result.returncode == 0, result.stderr
    uuid = json.loads(nspod("list", "--full", "--format", "json").stdout)[0]["uuid"]
    logs = nspod("logs", uuid)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "bb: out\n", "bb: err\n")
    app = nspod("logs", "--app=bb", "logged")  # by name, after the end
    assert (app.returncode, app.stdout, app.stderr) == (0, "out\n", "err\n")
    unknown = nspod("logs", "--app=nope", uuid)
    assert unknown.returncode == 254 and "has no app nope" in unknown.stderr


def test_tty_gives_the_app_the_terminal(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    pid, terminal = pty.fork()
    if pid == 0:  # the child: nspod on a terminal of its own
        os.execve(nspod.argv()[0], nspod.argv("run", "-t", str(bb), "--exec=/bin/sh"), ENV)
    seen = b""

    def until(wanted: bytes, limit: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + limit
        while wanted not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([terminal], [], [], 0.5)[0]:
                seen += os.read(terminal, 4096)
                if seen.endswith(b"\x1b[6n"):  # the shell's line editor asks where the cursor is
                    os.write(terminal, b"\x1b[1;1R")

    until(b"# ")  # the app's prompt: typed before the pod is up, it would be lost as on a console
    os.write(terminal, b"tty; echo answer-$((6*7))\n")
    until(b"answer-42")
    # the app's stdin is a terminal (the pod's console, as the app's /dev shows it): the caller's
    assert b"not a tty" not in seen and (b"/dev/pts/" in seen or b"/dev/console" in seen), seen
    os.write(terminal, b"exit 5\n")
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 5, seen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--detach", "-i"], "--interactive needs a pod in the foreground"),
        (["-t"], "--tty needs a terminal on stdin"),
    ],
)
def test_stdio_usage_errors(nspod: Nspod, bb: Path, args: list[str], message: str) -> None:  # noqa: F811
    result = nspod("run", *args, str(bb))
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_interactive_needs_a_single_app(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    result = nspod("run", "-i", str(bb), "--name=a", str(bb), "--name=b")
    assert result.returncode == 2 and "this pod has 2" in result.stderr, result.stderr
    assert nspod("list", "--no-legend").stdout == ""  # refused before anything was made


def test_attached_runs_in_a_loop_and_in_parallel(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    def one(i: int) -> str | None:
        data = f"round {i}\n".encode() * 1000
        result = run_bytes(
            nspod, "-i", str(bb), "--exec=/bin/sh", "--", "-c", "cat; echo done >&2; exit 3", stdin=data
        )
        if (result.returncode, result.stdout, result.stderr) != (3, data, b"done\n"):
            return f"#{i}: {result.returncode} {result.stdout[-40:]!r} {result.stderr[-200:]!r}"
        return None

    with ThreadPoolExecutor(4) as pool:
        problems = [p for p in pool.map(one, range(CYCLES)) if p]
    assert problems == []
