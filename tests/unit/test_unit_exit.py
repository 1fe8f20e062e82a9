"""How an app ended, asked by its CRI log writer over the pod's systemd's private bus
(stage1/scripts/unit_exit.py): the D-Bus messages, against a small bus that answers as systemd."""

from __future__ import annotations

import importlib.util
import os
import socket
import struct
import threading
from pathlib import Path
from types import ModuleType

import pytest


def _module() -> ModuleType:
    path = Path(__file__).parents[2] / "stage1" / "scripts" / "unit_exit.py"
    spec = importlib.util.spec_from_file_location("unit_exit", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


U = _module()


def _reply(serial: int, kind: int, signature: bytes, value: int | str) -> bytes:
    fields = bytes([8, 1]) + b"g\0" + bytes([1]) + b"v\0"  # SIGNATURE "v"
    body = bytes([1]) + signature + b"\0\0"  # the variant's signature, padded to 4
    if signature == b"s":
        assert isinstance(value, str)
        body += struct.pack("<I", len(value)) + value.encode() + b"\0"
    else:
        body += struct.pack("<i", value)
    head = struct.pack("<cBBBIII", b"l", kind, 0, 1, len(body), serial + 100, len(fields))
    padded: bytes = U._pad(head + fields, 8)
    return padded + body


Values = dict[str, tuple[bytes, int | str]]


class Bus:
    """Answers Properties.Get for one unit as systemd would; what it was asked, in ``asked``."""

    def __init__(self, where: Path, values: Values) -> None:
        self.path = str(where / "private")
        self.values = values
        self.asked: list[tuple[bytes, str]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            data = b""
            while not data.endswith(b"\r\n"):
                data += conn.recv(1)
            assert data == b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n"
            conn.sendall(b"OK 0123456789abcdef\r\n")
            assert conn.recv(7) == b"BEGIN\r\n"
            for _ in range(3):
                head = U._receive(conn, 16)
                body_size, serial, fields_size = struct.unpack_from("<III", head, 4)
                rest = U._receive(conn, fields_size + (-(16 + fields_size) % 8) + body_size)
                body = rest[len(rest) - body_size :]
                size = struct.unpack_from("<I", body)[0]
                interface = body[4 : 4 + size].decode()
                at = 4 + size + 1
                at += -at % 4
                prop = body[at + 4 : at + 4 + struct.unpack_from("<I", body, at)[0]].decode()
                self.asked.append((rest[:fields_size], prop))
                assert interface == "org.freedesktop.systemd1.Service"
                if prop in self.values:
                    conn.sendall(_reply(serial, 2, *self.values[prop]))
                else:
                    conn.sendall(_reply(serial, 3, b"s", "no such property"))


def test_unit_path() -> None:
    assert U.unit_path("web-1.service") == "/org/freedesktop/systemd1/unit/web_2d1_2eservice"
    assert U.unit_path("1st.service") == "/org/freedesktop/systemd1/unit/_31st_2eservice"


def test_how_the_app_ended(tmp_path: Path) -> None:
    values: Values = {"ExecMainCode": (b"i", 1), "ExecMainStatus": (b"i", 3), "Result": (b"s", "exit-code")}
    bus = Bus(tmp_path, values)
    assert U.unit_exit("web.service", bus.path) == (1, 3, "exit-code")
    assert [prop for _, prop in bus.asked] == ["ExecMainCode", "ExecMainStatus", "Result"]
    assert b"/org/freedesktop/systemd1/unit/web_2eservice\0" in bus.asked[0][0]
    assert b"org.freedesktop.DBus.Properties\0" in bus.asked[0][0]


def test_the_answers(tmp_path: Path) -> None:
    values: Values = {"ExecMainCode": (b"i", 2), "ExecMainStatus": (b"i", 9), "Result": (b"s", "signal")}
    bus = Bus(tmp_path, values)
    assert U.answers([b"41", b"42"], "web", bus.path) == b"41 2 9 signal\n42 2 9 signal\n"


@pytest.mark.parametrize("broken", ["error", "nobody"])
def test_the_bus_cannot_say(tmp_path: Path, broken: str) -> None:
    """An error reply, or no bus at all: the reaper asks systemctl itself (the ID alone)."""
    where = Bus(tmp_path, {"ExecMainCode": (b"i", 1)}).path if broken == "error" else str(tmp_path / "none")
    assert U.unit_exit("web.service", where) is None
    assert U.answers([b"7"], "web", where) == b"7\n"
