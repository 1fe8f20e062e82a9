"""The foreground side of an attached pod (stage1/stdio.py): the sockets its apps' stdio connect
to, and a thread that relays them — stdout to our stdout, stderr to our stderr, our stdin to the
app (``--interactive``) — and copies every line to the journal for ``nspod logs``.

Lines are labelled with their app's name (``web: text``); an interactive app's output passes
through byte for byte instead, as it comes (a prompt needs no newline, a pipeline no labels).
Every exec of an app (its pre-start hooks too) connects anew; our stdin goes to the newest
connection.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from stage1.journal import label, send
from stage1.stdio import Stream, socket_name

CHUNK = 65536
LINE_MAX = 48 * 1024  # a journal entry's message at most (a datagram must fit the socket buffer)


def listen(io_dir: str, apps: int, *, stdin: bool) -> dict[tuple[int, Stream], socket.socket]:
    """The listening sockets of ``apps`` apps' streams in ``io_dir`` (stdin's only with ``stdin``)."""
    listeners = {}
    os.makedirs(io_dir, mode=0o700, exist_ok=True)
    directory = os.open(io_dir, os.O_PATH | os.O_DIRECTORY)
    try:
        for index in range(apps):
            for stream in (Stream.STDIN, Stream.STDOUT, Stream.STDERR):
                if stream is Stream.STDIN and not stdin:
                    continue
                name = socket_name(index, stream)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=directory)
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                # through the directory's descriptor: the pod's path may be too long for a socket
                listener.bind(f"/proc/self/fd/{directory}/{name}")
                listener.listen(8)
                listeners[(index, stream)] = listener
    finally:
        os.close(directory)
    return listeners


class Relay:
    def __init__(
        self,
        io_dir: str,
        apps: list[str],
        fields: dict[str, str],
        *,
        stdin: bool = False,
        raw: bool = False,
        inp: int = 0,
        out: BinaryIO | None = None,
        err: BinaryIO | None = None,
        journal: Callable[[dict[str, bytes]], None] = send,
        listeners: dict[tuple[int, Stream], socket.socket] | None = None,
        adopted: tuple[tuple[socket.socket, int, Stream], ...] = (),
        on_accept: Callable[[socket.socket, int, Stream], None] | None = None,
    ) -> None:
        """Listens at once (before the pod starts); ``fields``: the journal fields of every line;
        ``raw``: output unlabelled, as it comes (one app). ``listeners`` (from :func:`listen`) and
        ``adopted`` output connections: another relay's, taken over (stage1/nspawn/heir.py);
        ``on_accept``: told of each output connection accepted."""
        self._apps = apps
        self._raw = raw and len(apps) == 1
        self._fields = {k: v.encode() for k, v in fields.items()}
        self._stdin = inp if stdin else None
        self._outs = {Stream.STDOUT: out or sys.stdout.buffer, Stream.STDERR: err or sys.stderr.buffer}
        self._color = self._outs[Stream.STDOUT].isatty()
        self._journal = journal
        self._selector = selectors.DefaultSelector()
        self._partial: dict[tuple[int, Stream], bytes] = {}
        self._open_outputs = 0
        self._stdin_conn: socket.socket | None = None  # the newest connection to an app's stdin
        self._stdin_eof = False
        self._stdin_ready = threading.Condition()
        self._stdin_pump: threading.Thread | None = None
        self._wake_read, self._wake = os.pipe()
        self._deadline = 0.0  # set by finish()
        self._selector.register(self._wake_read, selectors.EVENT_READ, ("wake",))
        self._on_accept = on_accept
        for (index, stream), listener in (listeners or listen(io_dir, len(apps), stdin=stdin)).items():
            if stream is not Stream.STDIN or stdin:
                listener.setblocking(False)
                self._selector.register(listener, selectors.EVENT_READ, ("listen", index, stream))
        for conn, index, stream in adopted:
            conn.setblocking(False)
            self._open_outputs += 1
            self._selector.register(conn, selectors.EVENT_READ, ("output", index, stream))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def finish(self, limit: float = 5.0) -> None:
        """After the pod ended: relay what the apps wrote to its end (connections not yet
        accepted included), then stop; ``limit``: seconds at most."""
        self._deadline = time.monotonic() + limit
        os.write(self._wake, b"x")
        self._thread.join()
        os.close(self._wake)

    # the thread's side

    def _loop(self) -> None:
        try:
            self._relay()
        except Exception as error:  # a thread's end: say why (the pod runs on)
            print(f"nspod: relaying the pod's output stopped: {error!r}", file=sys.stderr)

    def _relay(self) -> None:
        finishing = False
        while True:
            timeout = max(0.0, self._deadline - time.monotonic()) if finishing else None
            for key, _ in self._selector.select(timeout):
                kind, *where = key.data
                if kind == "wake":
                    finishing = True
                    os.read(self._wake_read, 1)
                elif kind == "listen":
                    self._accept(key.fileobj, *where)  # type: ignore[arg-type]
                elif kind == "output":
                    self._output(key.fileobj, *where)  # type: ignore[arg-type]
            if finishing:  # done once every connection made so far has reached its end
                for key in list(self._selector.get_map().values()):
                    while key.data[0] == "listen" and self._accept(key.fileobj, *key.data[1:]):  # type: ignore[arg-type]
                        pass
                if not self._open_outputs or time.monotonic() >= self._deadline:
                    self._close()
                    return

    def _accept(self, listener: socket.socket, index: int, stream: Stream) -> bool:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return False
        conn.setblocking(False)
        if stream is not Stream.STDIN:
            self._open_outputs += 1
            self._selector.register(conn, selectors.EVENT_READ, ("output", index, stream))
            if self._on_accept is not None:
                self._on_accept(conn, index, stream)
            return True
        conn.setblocking(True)
        with self._stdin_ready:
            if self._stdin_conn is not None:  # an earlier exec of the app's (a hook) is done with it
                with contextlib.suppress(OSError):
                    self._stdin_conn.shutdown(socket.SHUT_RDWR)
            self._stdin_conn = conn
            if self._stdin_eof:
                conn.shutdown(socket.SHUT_WR)
            self._stdin_ready.notify()
        if self._stdin_pump is None:  # our stdin is read only once an app takes it
            self._stdin_pump = threading.Thread(target=self._pump_stdin, daemon=True)
            self._stdin_pump.start()
        return True

    def _output(self, conn: socket.socket, index: int, stream: Stream) -> None:
        try:
            data = conn.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self._emit(index, stream, data)
            return
        self._selector.unregister(conn)
        conn.close()
        self._open_outputs -= 1
        rest = self._partial.pop((index, stream), b"")
        if rest:
            self._log(index, stream, rest)
            if not self._raw:
                self._write(stream, label(self._apps[index].encode(), color=self._color) + rest + b"\n")

    def _emit(self, index: int, stream: Stream, data: bytes) -> None:
        if self._raw:
            self._write(stream, data)  # as it comes, prompts and all
        lines = (self._partial.pop((index, stream), b"") + data).split(b"\n")
        rest = lines.pop()
        if len(rest) > LINE_MAX:
            lines.append(rest)
            rest = b""
        if rest:
            self._partial[(index, stream)] = rest
        for line in lines:
            self._log(index, stream, line)
        if lines and not self._raw:
            prefix = label(self._apps[index].encode(), color=self._color)
            self._write(stream, b"".join(prefix + line + b"\n" for line in lines))

    def _write(self, stream: Stream, data: bytes) -> None:
        try:
            self._outs[stream].write(data)
            self._outs[stream].flush()
        except BrokenPipeError:  # the reader went away (| head): the app goes on, the journal has it
            self._outs[stream] = open(os.devnull, "wb")  # noqa: SIM115 (as long-lived as the relay)

    def _log(self, index: int, stream: Stream, line: bytes) -> None:
        name = self._apps[index].encode()
        for start in range(0, max(len(line), 1), LINE_MAX):
            self._journal(
                {
                    "MESSAGE": line[start : start + LINE_MAX],
                    "PRIORITY": b"3" if stream is Stream.STDERR else b"6",
                    "SYSLOG_IDENTIFIER": name,
                    "NSPOD_APP": name,
                    "NSPOD_STREAM": b"stderr" if stream is Stream.STDERR else b"stdout",
                    **self._fields,
                }
            )

    # stdin, in a thread of its own: blocking reads take any stdin (epoll refuses regular files),
    # and blocking sends pace our reading to the app's, while the loop goes on relaying its output

    def _pump_stdin(self) -> None:
        assert self._stdin is not None
        while True:
            try:
                data = os.read(self._stdin, CHUNK)
            except OSError:
                data = b""
            conn = self._wait_stdin_conn()
            if not data:
                with self._stdin_ready:
                    self._stdin_eof = True
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_WR)
                return
            while data:
                try:
                    data = data[conn.send(data) :]
                except OSError:  # that exec (a hook, or the app) is gone: what it left is the next one's
                    conn = self._wait_stdin_conn(instead_of=conn)

    def _wait_stdin_conn(self, instead_of: socket.socket | None = None) -> socket.socket:
        with self._stdin_ready:
            while self._stdin_conn is None or self._stdin_conn is instead_of:
                self._stdin_ready.wait()
            return self._stdin_conn

    def _close(self) -> None:
        for key in list(self._selector.get_map().values()):
            if isinstance(key.fileobj, socket.socket):
                key.fileobj.close()
        self._selector.close()
        os.close(self._wake_read)
