"""Structured journal entries of nspod's own (NSPOD_EVENT=…), sent to journald's native socket, so
``journalctl NSPOD_EVENT=auto-update`` and ``nspod events`` read them after any restart."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

JOURNAL_SOCKET = "/run/systemd/journal/socket"


def entry(message: str, fields: Mapping[str, str], *, priority: int = 6) -> bytes:
    """The native protocol's datagram: KEY=value lines; a value with a newline goes length-prefixed."""
    pairs = {"MESSAGE": message, "PRIORITY": str(priority), "SYSLOG_IDENTIFIER": "nspod", **fields}
    out = bytearray()
    for key, value in pairs.items():
        data = value.encode()
        if b"\n" in data:
            out += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def send(message: str, fields: Mapping[str, str], *, priority: int = 6, path: str = JOURNAL_SOCKET) -> bool:
    """Log one entry; False when no journald listens (nspod outside systemd: the output still says it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(entry(message, fields, priority=priority), path)
        return True
    return False
