"""A foreground pod's output outlives the nspod that shows it (#23 item 21).

The apps of a foreground pod write to sockets that nspod listens on (stage1/attach.py); killed,
it took them along, and an app that started afterwards failed to connect (``209/STDOUT``, shown
as the app's exit code). So before the pod starts, a small process of its own, the *heir*, gets
a copy of the listening sockets, and of every output connection as the relay accepts it, and
waits. When ``run`` ends as it should it says so and the heir goes; when its end is an EOF
instead (kill -9), the heir relays on, to the journal alone (where ``nspod logs`` reads), until
the pod's unit ends: the pod runs on, as the README promises.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

from stage1.attach import Relay
from stage1.stdio import Stream
from stage1.systemd import Systemd, SystemdError, WaitTimeout

DONE = b"done"
NOT_STARTED_GRACE = 2.0  # s: a start asked just before the kill may take this long to show the unit


class Heir:
    """The relay's side: hand over each output connection, and say when the run ended well."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel

    def handed(self, conn: socket.socket, index: int, stream: Stream) -> None:
        with contextlib.suppress(OSError):  # the heir gone: nothing to hand on
            socket.send_fds(self._channel, [f"{index} {stream}".encode()], [conn.fileno()])

    def done(self) -> None:
        with contextlib.suppress(OSError):
            self._channel.send(DONE)
        self._channel.close()


def spawn(
    listeners: dict[tuple[int, Stream], socket.socket],
    io_dir: str,
    apps: list[str],
    fields: dict[str, str],
    unit: str,
) -> Heir:
    """The heir of the relay about to listen on ``listeners``, for the pod running as ``unit``."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # no threads run yet in this process (the relay's starts after), so fork is safe
        try:
            if os.fork() == 0:  # twice: the heir is nobody's child to reap, and outlives its nspod
                ours.close()
                _detach({theirs.fileno(), *(listener.fileno() for listener in listeners.values())})
                _inherit(theirs, listeners, io_dir, apps, fields, unit)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    theirs.close()
    return Heir(ours)


def _detach(keep: set[int]) -> None:
    """No terminal, no session of the caller's, no descriptor but ``keep`` (the caller's stdout
    pipe, its locks: none stays open because the heir waits)."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        if int(name) > 2 and int(name) not in keep:
            with contextlib.suppress(OSError):
                os.close(int(name))


def _inherit(
    channel: socket.socket,
    listeners: dict[tuple[int, Stream], socket.socket],
    io_dir: str,
    apps: list[str],
    fields: dict[str, str],
    unit: str,
) -> None:
    adopted = []
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(channel, 64, 1)
        except OSError:
            message, fds = b"", []
        if message == DONE:
            return
        if not message:
            break  # the run is gone without a word: killed
        index, stream = message.decode().split(" ")
        adopted.append((socket.socket(fileno=fds[0]), int(index), Stream(stream)))
    null = open(os.devnull, "wb")  # noqa: SIM115 (the heir's whole life)
    stdin = (0, Stream.STDIN) in listeners
    relay = Relay(io_dir, apps, fields, stdin=stdin, inp=0, out=null, err=null,
                  listeners=listeners, adopted=tuple(adopted))  # fmt: skip
    _wait_ended(unit)
    relay.finish()


def _wait_ended(unit: str) -> None:
    """Until the pod's unit has ended (or, not there, did not show up within the grace)."""
    deadline = time.monotonic() + NOT_STARTED_GRACE
    with Systemd() as systemd:
        while True:
            try:
                systemd.wait(unit, timeout=60.0)
            except WaitTimeout:
                continue  # it runs on
            except SystemdError:
                pass  # not (yet) loaded
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
