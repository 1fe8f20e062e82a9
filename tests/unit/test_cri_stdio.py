"""A CRI container's stdio: the in-pod writer reading the app's FIFOs (held open elsewhere, as the
pod's systemd holds them), rotation, attach and stdin_once (stage1/scripts/cri_log.py), the
attach frames of nspod's side (stage0/cri/attach.py), and the units (stage1/crilog.py)."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import socket
import stat
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from stage0.cri import attach, logs
from stage0.cri.streaming import AttachIO
from stage1 import crilog
from stage1.abi import AppSpec
from stage1.app_unit import app_unit


def _writer() -> ModuleType:
    path = Path(__file__).parents[2] / "stage1" / "scripts" / "cri_log.py"
    spec = importlib.util.spec_from_file_location("cri_log", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _writer()


class Pod:
    """What the pod's systemd holds for one app (cri-log-web.socket): the FIFOs, opened read-write
    and non-blocking, and the listening sockets; and the app's write ends."""

    def __init__(self, where: Path, *, stdin: bool) -> None:
        self.where = where
        self.fds: dict[str, int] = {}
        for name in ("out", "err", "ctl", "ack"):
            os.mkfifo(where / f"web.{name}", 0o600)
            self.fds[name] = os.open(where / f"web.{name}", os.O_RDWR | os.O_NONBLOCK)
        self.listeners = []
        for name in ("attach", *(("in",) if stdin else ())):
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(where / f"web.{name}"))
            listener.listen(4)
            self.listeners.append(listener)
            self.fds[name] = os.dup(listener.fileno())
        self.out = os.open(where / "web.out", os.O_WRONLY)
        self.err = os.open(where / "web.err", os.O_WRONLY)

    def start(self, path: Path, *flags: str) -> tuple[threading.Thread, list[float]]:
        stopping: list[float] = []
        fds = {k: os.dup(v) for k, v in self.fds.items()}
        args = (["web", str(path), *flags], fds, stopping)
        where = {"sockets": str(self.where), "journal_socket": str(self.where / "no-journal")}
        thread = threading.Thread(target=W.main, args=args, kwargs=where)
        thread.start()
        return thread, stopping


@pytest.fixture
def pod(tmp_path: Path) -> Iterator[Pod]:
    (tmp_path / "logs").mkdir()
    yield Pod(tmp_path, stdin=True)


def _wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _lines(path: Path | str) -> list[tuple[str, bytes]]:
    """The log's lines so far (the writer makes the file as it starts, in its thread)."""
    try:
        return logs.read_lines(str(path))
    except FileNotFoundError:
        return []


def test_the_writer_reads_fifos_and_follows_rotation(pod: Pod, tmp_path: Path) -> None:
    path = tmp_path / "logs" / "0.log"
    writer, stopping = pod.start(path)
    os.write(pod.out, b"first\n")
    os.write(pod.err, b"oops\n")
    _wait_for(lambda: len(_lines(path)) == 2)
    assert sorted(logs.read_lines(str(path))) == [("stderr", b"oops"), ("stdout", b"first")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    os.rename(path, str(path) + ".1")
    os.write(pod.out, b"to the old file\n")  # renamed, not reopened yet: the old file takes it
    _wait_for(lambda: len(_lines(str(path) + ".1")) == 3)
    logs.reopen(str(path), running=True)
    os.write(pod.out, b"x" * 20000 + b"\nlast")
    os.close(pod.out)  # the app ended; its FIFOs never end (held), so the writer is stopped
    stopping.append(time.monotonic())
    writer.join(5)
    assert not writer.is_alive()
    assert logs.read_lines(str(path) + ".1")[-1] == ("stdout", b"to the old file")
    assert logs.read_lines(str(path)) == [("stdout", b"x" * 20000), ("stdout", b"last")]
    tags = [line.split(b" ")[2] for line in path.read_bytes().splitlines()]
    assert tags == [b"P", b"F", b"F"]  # 16 KiB, then the rest of the long line, then the last


def test_the_reaper_has_the_writer_drain(pod: Pod, tmp_path: Path) -> None:
    """The app ended: the reaper's "drain ID" on ctl, answered with "ID" on ack once everything
    the app wrote is in the file, its last line without a newline too; the writer writes on."""
    path = tmp_path / "logs" / "0.log"
    writer, stopping = pod.start(path)
    client = _attached(tmp_path)
    client.sendall(attach.frame(attach.HELLO))
    time.sleep(0.2)  # accepted before the app writes
    os.write(pod.out, b"a line\n" * 1000 + b"the last, no newline")
    ctl = os.open(tmp_path / "web.ctl", os.O_WRONLY)
    os.write(ctl, b"drain 41\ndrain 42\n")  # two reapers' (one gave up): each is answered
    ack = os.open(tmp_path / "web.ack", os.O_RDONLY)
    answer = b""
    while answer.count(b"\n") < 2:
        answer += os.read(ack, 100)
    assert [line.split()[0] for line in answer.splitlines()] == [b"41", b"42"]  # and how it ended
    assert logs.read_lines(str(path))[-1] == ("stdout", b"the last, no newline")
    assert len(logs.read_lines(str(path))) == 1001
    client.settimeout(5)
    received = b""
    while chunk := client.recv(65536):  # then its end: attach ends with the app
        received += chunk
    assert received.endswith(b"the last, no newline")
    os.write(pod.out, b"after\n")  # the app started again
    _wait_for(lambda: len(_lines(path)) == 1002)
    stopping.append(0.0)
    writer.join(5)
    assert not writer.is_alive()


def test_a_writer_gone_loses_nothing(pod: Pod, tmp_path: Path) -> None:
    """Between two writers the app writes on (no SIGPIPE: the FIFO is held), and the next one
    reads what the first left."""
    path = tmp_path / "logs" / "0.log"
    first, stopping = pod.start(path)
    os.write(pod.out, b"1\n")
    _wait_for(lambda: len(_lines(path)) == 1)
    stopping.append(0.0)
    first.join(5)
    for n in range(2, 200):
        os.write(pod.out, b"%d\n" % n)
    second, stopping = pod.start(path)
    os.write(pod.out, b"200\n")
    _wait_for(lambda: len(_lines(path)) == 200)
    stopping.append(0.0)
    second.join(5)
    assert [int(text) for _, text in logs.read_lines(str(path))] == list(range(1, 201))


def _attached(where: Path) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(where / "web.attach"))
    return client


def test_attach_stdin_once(pod: Pod, tmp_path: Path) -> None:
    app_stdin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # systemd's file: on web.in
    app_stdin.connect(str(tmp_path / "web.in"))
    app_stdin.shutdown(socket.SHUT_WR)
    writer, stopping = pod.start(tmp_path / "logs" / "0.log", "--stdin-once")
    watcher = _attached(tmp_path)  # no stdin: its end does not end the app's
    watcher.sendall(attach.frame(attach.HELLO))
    watcher.close()
    client = _attached(tmp_path)
    client.sendall(attach.frame(attach.HELLO, b"i") + attach.frame(attach.STDIN, b"echo hi\n"))
    app_stdin.settimeout(5)
    assert app_stdin.recv(100) == b"echo hi\n"
    os.write(pod.out, b"hi\n")
    os.write(pod.err, b"err\n")
    frames = attach.Frames()
    got: list[tuple[bytes, bytes]] = []
    client.settimeout(5)
    while len(got) < 2:
        got += frames.feed(client.recv(100))
    assert sorted(got) == [(attach.STDOUT, b"hi\n"), (attach.STDERR, b"err\n")]
    client.sendall(attach.frame(attach.STDIN))  # the session's stdin ends: so does the app's
    assert app_stdin.recv(100) == b""
    stopping.append(0.0)
    writer.join(5)
    assert client.recv(100) == b""  # the container ended: so does the attach


class _Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


class _Source:
    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    def read(self, size: int = 65536) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


def test_relay_sends_stdin_and_sorts_output() -> None:
    ours, writers = socket.socketpair()
    out, err = _Sink(), _Sink()
    io = AttachIO(_Source(b"ls\n"), out, err, tty=False, sizes=iter(()))
    relay = threading.Thread(target=attach.relay, args=(ours, io))
    relay.start()
    frames, received = attach.Frames(), list[tuple[bytes, bytes]]()
    writers.settimeout(5)
    while len(received) < 3:
        received += frames.feed(writers.recv(1000))
    assert received == [(attach.HELLO, b"i"), (attach.STDIN, b"ls\n"), (attach.STDIN, b"")]
    writers.sendall(attach.frame(attach.STDOUT, b"a") + attach.frame(attach.STDERR, b"b"))
    writers.shutdown(socket.SHUT_WR)  # the container ended
    relay.join(5)
    assert (out.data, err.data) == (b"a", b"b")


def test_frames_split_anywhere() -> None:
    data = attach.frame(attach.STDOUT, b"hello") + attach.resize(80, 24)
    frames = attach.Frames()
    got = [f for byte in range(len(data)) for f in frames.feed(data[byte : byte + 1])]
    assert got == [(attach.STDOUT, b"hello"), (attach.RESIZE, b"80 24")]


def test_both_sides_speak_alike() -> None:
    assert (W.FRAME.format, W.HELLO, W.STDIN, W.STDOUT, W.STDERR, W.RESIZE) == (
        attach.FRAME.format, attach.HELLO, attach.STDIN, attach.STDOUT, attach.STDERR, attach.RESIZE,
    )  # fmt: skip
    assert attach.SOCKETS == crilog.SOCKETS == W.SOCKETS


APP = AppSpec(name="web", rootfs="/r", exec=("/bin/sh",), log_path="/var/log/pods/a/web/0.log")


def test_the_app_writes_to_its_fifos() -> None:
    settings = {k: v for _, k, v in app_unit(APP) if k.startswith("Standard")}
    assert settings == {
        "StandardOutput": "file:/run/nspod/crilog/web.out",
        "StandardError": "file:/run/nspod/crilog/web.err",
    }
    unit = app_unit(APP)
    assert ("Unit", "Requires", "cri-log-web.socket") in unit
    assert ("Unit", "Wants", "cri-log-web.service") in unit  # a writer that restarts leaves the app be
    plain = {k: v for _, k, v in app_unit(AppSpec(name="web", rootfs="/r", exec=("/bin/sh",)))}
    assert plain["StandardOutput"] == "journal+console"  # no log path: as before


def test_stdin_and_tty() -> None:
    with_stdin = AppSpec(name="web", rootfs="/r", exec=("/bin/sh",), log_path="/l/0.log", stdin=True)
    assert dict(crilog.app_log_stdio(with_stdin))["StandardInput"] == "file:/run/nspod/crilog/web.in"
    tty = AppSpec(name="web", rootfs="/r", exec=("/bin/sh",), log_path="/l/0.log", stdin=True, tty=True)
    assert crilog.app_log_stdio(tty) == [
        ("StandardInput", "tty-force"),
        ("StandardOutput", "tty"),
        ("StandardError", "tty"),
        ("TTYPath", "/run/nspod/crilog/web.tty"),
    ]
    assert "--tty" in dict((k, v) for _, k, v in crilog.writer_unit(tty))["ExecStart"]
    listen = [v for _, k, v in crilog.stdio_socket_unit(tty) if k.startswith("Listen")]
    assert listen == [f"/run/nspod/crilog/web.{s}" for s in ("out", "err", "attach", "ctl", "ack")]


def test_units() -> None:
    writer = {k: v for _, k, v in crilog.writer_unit(APP)}
    assert writer["Type"] == "notify" and writer["Restart"] == "always"
    assert writer["ExecStart"] == "/usr/bin/python3 -I -S /nspod/bin/cri-log web /nspod/crilog/web/0.log"
    assert writer["RequiresMountsFor"] == "/nspod/crilog/web"
    assert writer["Sockets"] == "cri-log-web.socket"
    socket_unit = crilog.stdio_socket_unit(APP)
    assert ("Socket", "ListenFIFO", "/run/nspod/crilog/web.out") in socket_unit
    assert ("Socket", "ListenFIFO", "/run/nspod/crilog/web.err") in socket_unit
    assert ("Socket", "ListenFIFO", "/run/nspod/crilog/web.ctl") in socket_unit  # the reaper's
    assert ("Unit", "Before", "shutdown.target reaper-web.service") in crilog.writer_unit(APP)
    assert ("Socket", "SocketMode", "0600") in socket_unit  # the pod's root alone
    assert ("Socket", "DirectoryMode", "0700") in socket_unit


def test_a_container_without_a_log_file_has_its_fifos_too() -> None:
    """critest's containers have no log path, and nginx opens /dev/stderr all the same."""
    bare = AppSpec(name="web", rootfs="/r", exec=("/bin/sh",), cri_stdio=True, stdin=True, stdin_once=True)
    assert crilog.has_writer(bare) and not crilog.has_writer(AppSpec(name="web", rootfs="/r", exec=("/x",)))
    writer = {k: v for _, k, v in crilog.writer_unit(bare)}
    assert writer["ExecStart"] == "/usr/bin/python3 -I -S /nspod/bin/cri-log web - --stdin-once"
    assert "RequiresMountsFor" not in writer
    assert dict(crilog.app_log_stdio(bare))["StandardError"] == "file:/run/nspod/crilog/web.err"


def test_the_writer_without_a_file(pod: Pod, tmp_path: Path) -> None:
    writer, stopping = pod.start(Path("-"))
    client = _attached(tmp_path)
    client.sendall(attach.frame(attach.HELLO))
    time.sleep(0.2)  # accepted before the app writes
    os.write(pod.out, b"seen by attach\n")
    client.settimeout(5)
    assert attach.Frames().feed(client.recv(100)) == [(attach.STDOUT, b"seen by attach\n")]
    stopping.append(0.0)
    writer.join(5)
    assert not Path("-").exists()


def test_relay_ends_when_the_client_is_gone() -> None:
    """A quiet container and a client gone: the relay does not wait for the container's end."""
    ours, writers = socket.socketpair()
    io = AttachIO(None, _Sink(), _Sink(), tty=False, sizes=iter(()), gone=lambda: True)
    started = time.monotonic()
    attach.relay(ours, io)
    assert time.monotonic() - started < 3
    assert attach.Frames().feed(writers.recv(100)) == [(attach.HELLO, b"")]


def test_the_writers_pty(pod: Pod, tmp_path: Path) -> None:
    """--tty: the app's terminal is a pty the writer made (web.tty links to it); attach types into
    it and sets its size; what the app writes there is its stdout in the log."""
    path = tmp_path / "logs" / "0.log"
    writer, stopping = pod.start(path, "--tty")
    _wait_for(lambda: (tmp_path / "web.tty").is_symlink())
    app = os.open(tmp_path / "web.tty", os.O_RDWR | os.O_NOCTTY)
    client = _attached(tmp_path)
    client.sendall(
        attach.frame(attach.HELLO, b"i") + attach.resize(100, 30) + attach.frame(attach.STDIN, b"ls\n")
    )
    assert os.read(app, 100) == b"ls\n"
    rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(app, termios.TIOCGWINSZ, b"\0" * 8))
    assert (columns, rows) == (100, 30)
    os.write(app, b"on the tty\n")
    _wait_for(lambda: ("stdout", b"on the tty") in _lines(path))
    stopping.append(0.0)
    writer.join(5)
    os.close(app)


def test_what_systemd_passed(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "web.out")
    fifo = os.open(tmp_path / "web.out", os.O_RDWR | os.O_NONBLOCK)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "web.attach"))
        assert (W.role(fifo), W.role(listener.fileno())) == ("out", "attach")
    os.close(fifo)
    assert W.passed({"LISTEN_PID": "1", "LISTEN_FDS": "2"}) == {}  # not ours
