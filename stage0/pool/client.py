"""The first thing ``nspod run`` (and ``nspod app start``) tries: hand the command to the pool keeper
(stage0/pool/keeper.py).

Imports only the standard library's socket layer, so a pooled run starts no more Python than
it needs. The keeper runs as root with everything loaded, a booted spare pod at hand; it gets
this command line, the working directory and our stdin, stdout and stderr (SCM_RIGHTS), runs
the app with its output relayed to them, and answers with the exit code — or says "cold", and
``nspod run`` goes on as it would without a pool. Ctrl-C here asks the keeper to stop the pod.
An ``app start`` is served the same way (stage0/pool/app_start.py): the keeper starts the app
and answers with the command's exit code.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType

SOCKET = "/run/nspod/pool.sock"
MESSAGE_MAX = 1 << 16


def served(argv: list[str]) -> bool:
    """Whether the keeper may serve this command line: a ``run``, or an ``app start`` (the keeper
    parses it with the real parser and says "cold" to anything else)."""
    return "run" in argv or ("app" in argv and "start" in argv)


def try_pool(argv: list[str]) -> int | None:
    """The command's exit code, or None when the pool cannot take it (then run it cold)."""
    path = os.environ.get("NSPOD_POOL_SOCKET", SOCKET)  # NSPOD_POOL=0: never
    if not served(argv) or os.environ.get("NSPOD_POOL") == "0" or not os.path.exists(path):
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        conn.connect(path)
    except OSError:
        return None  # no keeper (stopped, or not ours to use): nothing lost
    with conn:
        request = json.dumps({"argv": argv, "cwd": os.getcwd()}).encode()
        conn.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        previous = {s: signal.signal(s, _forward(conn)) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while True:
                try:
                    data = conn.recv(MESSAGE_MAX)
                except InterruptedError:
                    continue
                if not data:
                    if not _started:
                        return None
                    os.write(2, b"nspod: the pool keeper went away during the run\n")
                    return 254
                answer = json.loads(data)
                if "cold" in answer:
                    return None
                if "started" in answer:
                    _started.append(True)
                    continue
                return int(answer["exit"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_started: list[bool] = []


def _forward(conn: socket.socket) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"signal": signum}).encode())

    return handler
