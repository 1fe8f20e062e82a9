"""Attach to a CRI container's main process: the streaming server's client ends relayed to the
container's log writer in its pod (``stage1/scripts/cri_log.py``), which reads the app's stdout
and stderr FIFOs, holds its stdin and its pty, and copies what the app writes to every attached
client as it writes it to the log.

The writer listens on ``/run/nspod/crilog/<app>.attach`` in the pod's own ``/run`` (mode 0600,
stage1/crilog.py), which nspod reaches through the pod's leader's root. On it travel frames: a
kind byte, the payload's length (4 bytes, big-endian) and the payload. The client says first
whether it brings stdin (``h``), then sends stdin (``0``, empty at its end) and terminal sizes
(``r``, "columns rows"); the writer sends stdout (``1``) and stderr (``2``) and closes the
connection once the container has ended.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading

import grpc

from stage0.cri.status import Failure
from stage0.cri.streaming import AttachIO

SOCKETS = "/run/nspod/crilog"  # in the pod (stage1/crilog.py SOCKETS; a unit test holds them equal)
FRAME = struct.Struct(">cI")
HELLO, STDIN, STDOUT, STDERR, RESIZE = b"h", b"0", b"1", b"2", b"r"
CHUNK = 65536


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    return FRAME.pack(kind, len(payload)) + payload


class Frames:
    """Frames out of a byte stream, as they complete (pure)."""

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.pending += data
        out = []
        while len(self.pending) >= FRAME.size:
            kind, size = FRAME.unpack_from(self.pending)
            if len(self.pending) < FRAME.size + size:
                break
            out.append((kind, self.pending[FRAME.size : FRAME.size + size]))
            self.pending = self.pending[FRAME.size + size :]
        return out


def hello(io: AttachIO) -> bytes:
    return frame(HELLO, b"i" if io.stdin is not None else b"")


def resize(columns: int, rows: int) -> bytes:
    return frame(RESIZE, f"{columns} {rows}".encode())


def connect(leader: int, app: str) -> socket.socket:
    """The writer's attach socket of ``app`` in the pod whose leader (its systemd) is ``leader``."""
    try:
        directory = os.open(f"/proc/{leader}/root{SOCKETS}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise _no_attach(app, error) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        # through the directory's descriptor: the pod's path may be too long for a socket's
        sock.connect(f"/proc/self/fd/{directory}/{app}.attach")
    except OSError as error:
        sock.close()
        raise _no_attach(app, error) from None
    finally:
        os.close(directory)
    return sock


def _no_attach(app: str, error: OSError) -> Failure:
    return Failure(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"container {app} cannot be attached to: {error.strerror}",
        hint="only a running container with a log (a sandbox with a log directory) has its stdio",
    )


def relay(sock: socket.socket, io: AttachIO) -> None:
    """Until the container ends (the writer closes) or the client stops reading its output."""
    lock = threading.Lock()

    def send(data: bytes) -> bool:
        with lock:
            try:
                sock.sendall(data)
                return True
            except OSError:
                return False

    def pump_stdin() -> None:
        assert io.stdin is not None
        with contextlib.suppress(OSError):
            while (data := io.stdin.read(CHUNK)) and send(frame(STDIN, data)):
                pass
        send(frame(STDIN))  # the end of this session's stdin (stdin_once ends the app's with it)

    def pump_sizes() -> None:
        for columns, rows in io.sizes:
            if not send(resize(columns, rows)):
                return

    send(hello(io))
    for wanted, target in ((io.stdin is not None, pump_stdin), (io.tty, pump_sizes)):
        if wanted:
            threading.Thread(target=target, daemon=True).start()
    frames = Frames()
    outputs = {STDOUT: io.stdout, STDERR: io.stdout if io.tty else io.stderr}
    sock.settimeout(1.0)  # to notice a client gone while the container is quiet
    try:
        while True:
            try:
                data = sock.recv(CHUNK)
            except TimeoutError:
                if io.gone():
                    return
                continue
            if not data:
                return
            for kind, payload in frames.feed(data):
                sink = outputs.get(kind)
                if sink is not None:
                    sink.write(payload)
    except OSError:
        pass  # the client went away (or the writer did): the container runs on
    finally:
        with lock:
            sock.close()
