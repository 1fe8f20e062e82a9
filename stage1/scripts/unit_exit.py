# unit_exit: how a unit of the pod's systemd ended (ExecMainCode, ExecMainStatus, Result), asked
# over its private bus socket by a process that is already running (the CRI log writer, cri_log.py):
# what `systemctl show` says, without a process spawned as the app ends (under load, systemctl's
# start alone took 25-100 ms of every container's exit). Only what those three Properties.Get
# calls need of D-Bus's wire protocol (little-endian messages, peer-to-peer: no Hello); any
# failure is None, and the reaper asks systemctl itself.
# Only the standard library: it runs with the host's /usr/bin/python3, which every pod sees.
from __future__ import annotations

import os
import socket
import struct

PRIVATE = "/run/systemd/private"
SERVICE = "org.freedesktop.systemd1.Service"
PROPERTIES = ("ExecMainCode", "ExecMainStatus", "Result")


def _pad(data: bytes, to: int) -> bytes:
    return data + b"\0" * (-len(data) % to)


def _text(data: bytes, value: str) -> bytes:
    """A string (or object path) appended at its 4-byte alignment."""
    raw = value.encode()
    return _pad(data, 4) + struct.pack("<I", len(raw)) + raw + b"\0"


def unit_path(unit: str) -> str:
    """The unit's object path: a character not a letter or digit (a first digit too) as _xx."""
    label = "".join(
        c if c.isascii() and (c.isalpha() or (c.isdigit() and i > 0)) else f"_{ord(c):02x}"
        for i, c in enumerate(unit)
    )
    return "/org/freedesktop/systemd1/unit/" + label


def get_call(serial: int, path: str, interface: str, prop: str) -> bytes:
    """org.freedesktop.DBus.Properties.Get(interface, prop) on path, to systemd."""
    fields = b""
    header = (
        (1, "o", path),
        (2, "s", "org.freedesktop.DBus.Properties"),
        (3, "s", "Get"),
        (6, "s", "org.freedesktop.systemd1"),
        (8, "g", "ss"),
    )
    for code, signature, value in header:  # a(yv), each struct at 8 (they start at offset 16)
        fields = _pad(fields, 8) + bytes([code, 1]) + signature.encode() + b"\0"
        raw = value.encode()
        fields = fields + bytes([len(raw)]) + raw + b"\0" if signature == "g" else _text(fields, value)
    body = _text(_text(b"", interface), prop)
    head = struct.pack("<cBBBIII", b"l", 1, 0, 1, len(body), serial, len(fields))
    return _pad(head + fields, 8) + body


def variant(body: bytes, order: str = "<") -> int | str:
    """A reply's body: one variant of type i, u or s (its value aligned within the body, which
    starts at 8 in the message)."""
    size = body[0]
    signature, at = body[1 : 1 + size], 2 + size
    at += -at % 4
    (number,) = struct.unpack_from(order + ("i" if signature == b"i" else "I"), body, at)
    return body[at + 4 : at + 4 + number].decode() if signature == b"s" else int(number)


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the bus closed the connection")
        data += chunk
    return data


def _reply(sock: socket.socket) -> int | str | None:
    head = _receive(sock, 16)
    order = "<" if head[:1] == b"l" else ">"
    kind = head[1]
    body_size, _, fields_size = struct.unpack_from(order + "III", head, 4)
    rest = _receive(sock, fields_size + (-(16 + fields_size) % 8) + body_size)  # the body last
    return variant(rest[len(rest) - body_size :], order) if kind == 2 else None  # 3: an error


def unit_exit(unit: str, bus: str = PRIVATE, timeout: float = 2.0) -> tuple[int, int, str] | None:
    """(ExecMainCode, ExecMainStatus, Result) of a service, or None where the bus cannot say."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(bus)
            sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
            if not sock.recv(256).startswith(b"OK "):
                return None
            sock.sendall(b"BEGIN\r\n")
            values = []
            for serial, prop in enumerate(PROPERTIES, start=1):
                sock.sendall(get_call(serial, unit_path(unit), SERVICE, prop))
                values.append(_reply(sock))
    except (OSError, struct.error, IndexError, UnicodeDecodeError):
        return None
    code, status, result = values
    if not isinstance(code, int) or not isinstance(status, int) or not isinstance(result, str):
        return None
    return code, status, result


def answers(idents: list[bytes], app: str, bus: str = PRIVATE) -> bytes:
    """The writer's answers to reapers' "drain ID": "ID CODE STATUS RESULT" lines, or "ID" alone
    where the bus cannot say (the reaper asks systemctl then)."""
    ended = unit_exit(f"{app}.service", bus) if idents else None
    tail = b"" if ended is None else " {} {} {}".format(*ended).encode()
    return b"".join(ident + tail + b"\n" for ident in idents)
