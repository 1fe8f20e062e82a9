#!/usr/bin/python3
# cri-log APP PATH: the log writer of app APP, a container of `nspod cri` (runs in the pod, as
# cri-log-APP.service). The app's stdout and stderr connect to its sockets (systemd's file: on
# /run/nspod/crilog/APP.out and .err); every line goes to PATH in the format kubelet reads,
# "<RFC3339Nano> stdout|stderr F|P <text>" (P: a part of a line longer than MAX_LINE, or its
# last part before the stream ended without a newline is F, as containerd writes), and to the
# pod's journal as the app's, and through the pod's console the host's (so `nspod logs` and
# `journalctl -M` keep showing it).
# Living in the pod, it outlives a restart of the CRI service. Kubelet rotates the file by
# renaming it and asking for a new one (ReopenContainerLog, which creates it): the writer
# writes on to the file it has open until a file at PATH is another one, then moves to it.
# It ends when both streams have ended (the app and every child holding them), having removed
# its sockets: the app's reaper waits for that, so the file is whole once the app is "exited".
# Only the standard library: it runs with the host's /usr/bin/python3, which every pod sees.
from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import threading
import time

SOCKETS = "/run/nspod/crilog"
MAX_LINE = 16 * 1024  # containerd's max_container_log_line_size
JOURNAL = "/run/systemd/journal/stdout"
STREAMS = {".out": "stdout", ".err": "stderr"}


def timestamp(ns: int) -> str:
    """Go's RFC3339Nano in UTC: nanoseconds with the trailing zeros dropped."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def record(ns: int, stream: str, tag: str, text: bytes) -> bytes:
    return f"{timestamp(ns)} {stream} {tag} ".encode() + text + b"\n"


class Splitter:
    """A stream's bytes as log records (tag, text): whole lines, and parts of long ones."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.pending += data
        out: list[tuple[str, bytes]] = []
        while True:
            end = self.pending.find(b"\n", 0, self.limit + 1)
            if end >= 0:
                line, self.pending = self.pending[:end], self.pending[end + 1 :]
                out.append(("F", line[:-1] if line.endswith(b"\r") else line))
            elif len(self.pending) >= self.limit:
                out.append(("P", self.pending[: self.limit]))
                self.pending = self.pending[self.limit :]
            else:
                return out

    def end(self) -> list[tuple[str, bytes]]:
        """The stream ended: what is left is a last line without its newline."""
        rest, self.pending = self.pending, b""
        return [("F", rest)] if rest else []


def journal_header(app: str) -> bytes:
    """What systemd says first on an app's stdout stream to journald: the app's name, no unit,
    priority info, no level prefixes, forwarded to the console (the pod's console is where the
    host's journal, and so `nspod logs`, takes an app's lines from)."""
    return f"{app}\n\n6\n0\n0\n0\n1\n".encode()


def journal_stream(app: str, path: str) -> socket.socket | None:
    """A stream to journald in the app's name, as systemd opens one for StandardOutput=journal+console."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        sock.sendall(journal_header(app))
        return sock
    except OSError:
        sock.close()
        return None


class LogFile:
    """PATH, opened for appending; moves to a new file at PATH once one replaced the old."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.open()

    def open(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as error:
            print(f"cri-log: cannot open {self.path}: {error.strerror}", file=sys.stderr)
            return
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd

    def write(self, data: bytes) -> None:
        try:
            now, current = os.stat(self.path), os.fstat(self.fd) if self.fd >= 0 else None
            if current is None or (now.st_dev, now.st_ino) != (current.st_dev, current.st_ino):
                self.open()
        except FileNotFoundError:
            pass  # renamed away, not reopened yet: the old file takes the lines meanwhile (kubelet's rule)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.fd, data)


def notify_ready() -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(b"READY=1", address)


def listen(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    return sock


def fifo(path: str) -> int:
    """A FIFO's read end, open before any writer (non-blocking: select() says nothing of it until
    a writer came, and EOF once every writer has gone)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    os.mkfifo(path, 0o600)
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)


def main(app: str, path: str, sockets: str = SOCKETS, journal_socket: str = JOURNAL, fifos: str = "") -> int:
    """``fifos``: a directory where the app's stdout and stderr are the FIFOs ``out`` and ``err``
    (a host unit's, stage1/fly), else ``sockets`` holds the sockets APP.out and APP.err."""
    os.makedirs(fifos or sockets, mode=0o755, exist_ok=True)
    listeners = {} if fifos else {listen(os.path.join(sockets, app + end)): s for end, s in STREAMS.items()}
    log = LogFile(path)
    journal = journal_stream(app, journal_socket)
    stopping: list[float] = []
    if threading.current_thread() is threading.main_thread():  # (the tests run it in a thread)
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(time.monotonic()))
    notify_ready()
    readers: dict[socket.socket | int, tuple[str, Splitter]] = {}
    for name, stream in (("out", "stdout"), ("err", "stderr")) if fifos else ():
        readers[fifo(os.path.join(fifos, name))] = (stream, Splitter())
    ended: set[str] = set()
    while len(ended) < len(STREAMS):
        if stopping and (not readers or time.monotonic() - stopping[0] > 2):
            break  # stopped: what the app wrote is drained (or it never started)
        watched = [*listeners, *readers]
        try:
            ready, _, _ = select.select(watched, [], [], 0.5)
        except InterruptedError:
            continue
        batch: list[tuple[str, str, bytes]] = []
        for sock in ready:
            if sock in listeners:
                connection, _ = sock.accept()
                readers[connection] = (listeners[sock], Splitter())
                continue
            stream, splitter = readers[sock]
            try:
                data = os.read(sock if isinstance(sock, int) else sock.fileno(), 65536)
            except BlockingIOError:
                continue
            records = splitter.feed(data) if data else splitter.end()
            batch += [(stream, tag, text) for tag, text in records]
            if not data:
                os.close(sock) if isinstance(sock, int) else sock.close()
                del readers[sock]
                ended.add(stream)
        if batch:
            ns = time.time_ns()
            log.write(b"".join(record(ns, stream, tag, text) for stream, tag, text in batch))
            if journal is not None:
                try:
                    journal.sendall(b"".join(text + b"\n" for _, _, text in batch))
                except OSError:
                    journal = None
    if journal is not None:
        journal.close()
    if log.fd >= 0:
        os.close(log.fd)
    for name in ("out", "err") if fifos else ():
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(fifos, name))
    for sock in listeners:  # last: the reaper waits for these to go (the file is whole then)
        with contextlib.suppress(OSError):
            os.unlink(sock.getsockname())
        sock.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--fifo":  # --fifo DIR APP PATH
        sys.exit(main(sys.argv[3], sys.argv[4], fifos=sys.argv[2]))
    sys.exit(main(sys.argv[1], sys.argv[2]))
