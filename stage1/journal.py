"""Showing a foreground pod's output: its entries in the host journal, read in-process with
libsystemd's sd-journal (through ctypes; the library is loaded already, pystemd links it).

The pod's unit writes nspawn's output to journald with ``POD_UUID=`` (LogExtraFields=), so the
lines of one pod are the entries matching that field. Reading them here, rather than through
``journalctl --follow``, spares a process start at the beginning and another at the end: once
journald has read the unit's stream to its end, one more pass over the journal prints the rest.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import select
import socket
import struct
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import BinaryIO

STREAMS = "/run/systemd/journal/streams"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
LOCAL_ONLY = 1  # SD_JOURNAL_LOCAL_ONLY: this machine's journal files, as journalctl reads them
POLL = 0.25  # seconds; inotify wakes us sooner (a fallback for journals inotify cannot watch)


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL("libsystemd.so.0", use_errno=True)
    journal_p = ctypes.c_void_p
    lib.sd_journal_open.argtypes = [ctypes.POINTER(journal_p), ctypes.c_int]
    lib.sd_journal_add_match.argtypes = [journal_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.sd_journal_set_data_threshold.argtypes = [journal_p, ctypes.c_size_t]
    lib.sd_journal_next.argtypes = [journal_p]
    lib.sd_journal_get_data.argtypes = [
        journal_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    lib.sd_journal_get_fd.argtypes = [journal_p]
    lib.sd_journal_process.argtypes = [journal_p]
    lib.sd_journal_close.argtypes = [journal_p]
    lib.sd_journal_close.restype = None
    lib.sd_journal_seek_realtime_usec.argtypes = [journal_p, ctypes.c_uint64]
    lib.sd_journal_get_realtime_usec.argtypes = [journal_p, ctypes.POINTER(ctypes.c_uint64)]
    return lib


def stream_open(unit: str) -> bool:
    """Whether journald still has an open stdout stream of ``unit`` (it keeps a file per stream)."""
    try:
        names = os.listdir(STREAMS)
    except FileNotFoundError:
        return False
    for name in names:
        try:
            with open(os.path.join(STREAMS, name)) as file:
                if f"UNIT={unit}\n" in file.read():
                    return True
        except OSError:
            continue
    return False


# what the pod's journald forwards to its console for an app: "[ 5802.914365] web[8]: text", the
# stamp being the host's uptime; shown as "web: text" (the app's name coloured on a terminal)
_CONSOLE = re.compile(rb"\[\s*\d+\.\d+\] ([^\s\[\]:]+)\[\d+\]: ?(.*)", re.DOTALL)


def label(app: bytes, *, color: bool = False) -> bytes:
    """``app: ``, the prefix of an app's lines (the name in a colour of its own on a terminal)."""
    if color:
        app = b"\x1b[%dm%s\x1b[0m" % (31 + zlib.crc32(app) % 6, app)
    return app + b": "


def console_line(message: bytes) -> tuple[bytes, bytes] | None:
    """(app, text) of a console line of the pod's, if it is an app's."""
    found = _CONSOLE.fullmatch(message)
    return (found.group(1), found.group(2)) if found else None


def app_line(message: bytes, *, color: bool = False) -> bytes:
    """One line of a pod's output as nspod shows it; lines of nspawn's own pass as they are."""
    found = console_line(message)
    return message if found is None else label(found[0], color=color) + found[1]


def send(fields: dict[str, bytes], socket_path: str = JOURNAL_SOCKET) -> None:
    """One entry to journald over its native protocol (every field in the length-prefixed form,
    so any byte may be in a value); lost quietly when journald is not there."""
    datagram = b"".join(
        key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n" for key, value in fields.items()
    )
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, socket_path)


@dataclass(frozen=True)
class Window:
    """Which of a pod's lines ``logs`` shows: those from ``since`` to ``until`` (seconds since the
    epoch), the last ``tail`` of what is there already; ``timestamps``: each after its time."""

    since: float | None = None
    until: float | None = None
    tail: int | None = None
    timestamps: bool = False


def stamp(usec: int) -> bytes:
    """An entry's time as podman's ``--timestamps`` shows it: RFC 3339, UTC, in microseconds."""
    seconds, micro = divmod(usec, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%06dZ " % micro


class Follower:
    """Prints the MESSAGE of every journal entry with ``FIELD=VALUE`` as it arrives (``journalctl
    --follow --output=cat FIELD=VALUE``, from the first entry on), until :meth:`finish`."""

    def __init__(
        self,
        field: str,
        value: str,
        out: BinaryIO | None = None,
        err: BinaryIO | None = None,
        *,
        relayed: bool = True,
        app: str | None = None,
        window: Window | None = None,
    ) -> None:
        """``relayed``: print the lines a foreground nspod relayed (stage1/attach.py) too (False
        where that nspod prints them itself); ``app``: only that app's lines, without the label;
        ``window``: which lines, and with their times (``nspod logs``'s options)."""
        self._out = out or sys.stdout.buffer
        self._err = err or sys.stderr.buffer
        self._color = self._out.isatty()
        self._relayed = relayed
        self._app = app.encode() if app is not None else None
        self._window = window or Window()
        self._tail = self._window.tail  # for the first pass alone: what is there already
        self.past = False  # an entry after the window's end was seen: nothing more to show
        self._lib = _library()
        self._journal = ctypes.c_void_p()
        self._thread: threading.Thread | None = None
        if self._lib.sd_journal_open(ctypes.byref(self._journal), LOCAL_ONLY) < 0:
            # the pod runs all the same; its output stays in the journal for 'nspod logs'
            print(
                "nspod: cannot open the journal, so the pod's output is not shown here\n"
                f"  hint: journalctl {field}={value} shows it",
                file=sys.stderr,
            )
            return
        match = f"{field}={value}".encode()
        self._lib.sd_journal_add_match(self._journal, match, len(match))
        self._lib.sd_journal_set_data_threshold(self._journal, 0)  # whole messages, however long
        if self._window.since is not None:
            self._lib.sd_journal_seek_realtime_usec(self._journal, int(self._window.since * 1e6))
        self._changes = self._lib.sd_journal_get_fd(self._journal)  # inotify on the journal files
        self._wake_read, self._wake = os.pipe()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _field(self, name: bytes) -> bytes | None:
        data, length = ctypes.c_void_p(), ctypes.c_size_t()
        if self._lib.sd_journal_get_data(self._journal, name, data, length) < 0:
            return None
        assert data.value is not None
        return ctypes.string_at(data.value, length.value)[len(name) + 1 :]

    def _line(self, message: bytes) -> tuple[bool, bytes] | None:
        """The current entry as (to stderr?, line), or None when it is not shown."""
        if self._field(b"NSPOD_EVENT") is not None:  # an event of the pod's (stage1/events.py)
            return None
        app = self._field(b"NSPOD_APP")
        if app is not None:  # relayed by a foreground nspod, one stream apart from the other
            if not self._relayed or (self._app is not None and app != self._app):
                return None
            text = message if self._app is not None else label(app, color=self._color) + message
            return self._field(b"NSPOD_STREAM") == b"stderr", text
        if self._app is None:
            return False, app_line(message, color=self._color)
        found = console_line(message)
        return None if found is None or found[0] != self._app else (False, found[1])

    def _print_new(self) -> None:
        shown = []
        while not self.past and self._lib.sd_journal_next(self._journal) > 0:
            usec = ctypes.c_uint64()
            self._lib.sd_journal_get_realtime_usec(self._journal, ctypes.byref(usec))
            if self._window.until is not None and usec.value > self._window.until * 1e6:
                self.past = True
                break
            message = self._field(b"MESSAGE")
            line = None if message is None else self._line(message)
            if line is not None:
                shown.append(line if not self._window.timestamps else (line[0], stamp(usec.value) + line[1]))
        if self._tail is not None:
            shown, self._tail = shown[len(shown) - self._tail :] if self._tail else [], None
        try:
            # in order, and each stream's run of lines in one write
            for to_err, run in itertools.groupby(shown, key=lambda item: item[0]):
                stream = self._err if to_err else self._out
                stream.write(b"".join(text + b"\n" for _, text in run))
                stream.flush()
        except BrokenPipeError:  # the reader went away (| head): the pod runs on regardless
            self._out = self._err = open(os.devnull, "wb")  # noqa: SIM115 (as long-lived as the follower)

    def _pump(self) -> None:
        watched = [self._wake_read] + ([self._changes] if self._changes >= 0 else [])
        while True:
            self._print_new()
            ready, _, _ = select.select(watched, [], [], POLL)
            if self._wake_read in ready:
                break
            self._lib.sd_journal_process(self._journal)
        self._print_new()  # what arrived before finish() woke us
        self._lib.sd_journal_close(self._journal)
        os.close(self._wake_read)

    def finish(self, unit: str | None, limit: float = 5.0) -> None:
        """Journald reads a unit's output stream asynchronously: once it has closed the unit's stream
        every line is in the journal; print what has not been printed yet, then stop. (``unit``
        None: what is in the journal now.)"""
        if self._thread is None:
            return
        deadline = time.monotonic() + limit
        while unit is not None and time.monotonic() < deadline and stream_open(unit):
            time.sleep(0.005)
        os.write(self._wake, b"x")
        self._thread.join()
        os.close(self._wake)

    def wait(self) -> None:
        """Follow until interrupted (Ctrl-C)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)
