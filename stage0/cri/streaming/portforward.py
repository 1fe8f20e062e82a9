"""Kubernetes' port-forward protocol (portforward.k8s.io) over SPDY streams: for each connection
the client opens an error stream and a data stream with the same ``requestid`` and ``port``
headers. We connect to that port on IPv4 localhost inside the sandbox's network namespace and
copy both ways; a failure is written as text on the error stream; both streams end with FIN.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable

from stage0.cri.streaming.session import Stream

PROTOCOL = "portforward.k8s.io"
CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0


def connect(netns: str | None, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` in the network namespace at ``netns`` (None: the
    host's). The socket is made by a thread of its own that joins the namespace and ends: a
    network namespace is a thread's, and a socket stays in the one it was made in."""
    if netns is None:
        return socket.create_connection(("127.0.0.1", port), CONNECT_TIMEOUT)
    made: list[socket.socket | OSError] = []

    def inside() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"cannot join the pod's network namespace: {os.strerror(err)}")
            finally:
                os.close(fd)
            made.append(socket.create_connection(("127.0.0.1", port), CONNECT_TIMEOUT))
        except OSError as error:
            made.append(error)

    thread = threading.Thread(target=inside, name="netns-connect")
    thread.start()
    thread.join()
    result = made[0]
    if isinstance(result, OSError):
        raise result
    return result


class PortForward:
    """Pairs one connection's streams by request ID and forwards each pair in a thread."""

    def __init__(self, dial: Callable[[int], socket.socket]) -> None:
        self._dial = dial
        self._pending: dict[str, dict[str, Stream]] = {}
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def add(self, stream: Stream) -> None:
        kind = stream.kind
        if kind not in ("data", "error"):
            stream.cancel()
            return
        key = stream.header("requestid") or stream.header("port")  # old clients send no ID
        with self._lock:
            pair = self._pending.setdefault(key, {})
            if kind in pair:  # a second stream of one kind for one request: refuse it
                stream.cancel()
                return
            pair[kind] = stream
            if len(pair) < 2:
                return
            del self._pending[key]
        thread = threading.Thread(target=self._forward, args=(pair["data"], pair["error"]), daemon=True)
        self.threads.append(thread)
        thread.start()

    def _forward(self, data: Stream, error: Stream) -> None:
        text = data.header("port")
        try:
            port = int(text)
            if not 0 < port < 65536:
                raise ValueError(text)
        except ValueError:
            self._fail(data, error, f"invalid port {text!r}")
            return
        try:
            conn = self._dial(port)
        except OSError as failure:
            self._fail(
                data, error, f"failed to connect to localhost:{port} inside the pod: {failure.strerror}"
            )
            return
        conn.settimeout(None)
        upstream = threading.Thread(target=_client_to_pod, args=(data, conn), daemon=True)
        upstream.start()
        try:
            while chunk := conn.recv(65536):
                data.write(chunk)
        except OSError:
            pass  # either side broke off: both end below
        finally:
            data.close()
            error.close()
            upstream.join(30.0)
            conn.close()

    @staticmethod
    def _fail(data: Stream, error: Stream, message: str) -> None:
        with contextlib.suppress(OSError):
            error.write(message.encode())
        error.close()
        data.close()


def _client_to_pod(data: Stream, conn: socket.socket) -> None:
    try:
        while chunk := data.read():
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)  # the client's side ended: the pod's server sees EOF
    except OSError:
        pass
