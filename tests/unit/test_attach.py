"""The relay of an attached foreground pod (stage1/attach.py), with the apps' side played by
plain socket connections, as systemd's ``file:`` makes them: output apart by stream and labelled,
every line to the journal, stdin paced and ended, a newer exec taking stdin over."""

from __future__ import annotations

import io
import os
import socket
import threading
from pathlib import Path

from stage1.attach import Relay
from stage1.stdio import Stream, socket_name


class Sink(io.BytesIO):
    def isatty(self) -> bool:
        return False


def connect(directory: Path, index: int, stream: Stream) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(directory / socket_name(index, stream)))
    return sock


def relay(
    tmp_path: Path, apps: list[str], **kwargs: object
) -> tuple[Relay, Sink, Sink, list[dict[str, bytes]]]:
    out, err = Sink(), Sink()
    journal: list[dict[str, bytes]] = []
    fields = {"POD_UUID": "u1"}
    made = Relay(str(tmp_path / "io"), apps, fields, out=out, err=err, journal=journal.append, **kwargs)  # type: ignore[arg-type]
    return made, out, err, journal


def test_lines_are_labelled_apart_by_stream_and_journalled(tmp_path: Path) -> None:
    made, out, err, journal = relay(tmp_path, ["web", "db"])
    web_out, db_err = connect(tmp_path / "io", 0, Stream.STDOUT), connect(tmp_path / "io", 1, Stream.STDERR)
    web_out.sendall(b"one\ntw")
    db_err.sendall(b"oops\n")
    web_out.sendall(b"o\nunended")
    web_out.close()
    db_err.close()
    made.finish()
    assert out.getvalue() == b"web: one\nweb: two\nweb: unended\n"
    assert err.getvalue() == b"db: oops\n"
    entries = {(e["NSPOD_APP"], e["NSPOD_STREAM"], e["MESSAGE"], e["PRIORITY"]) for e in journal}
    assert entries == {
        (b"web", b"stdout", b"one", b"6"),
        (b"web", b"stdout", b"two", b"6"),
        (b"web", b"stdout", b"unended", b"6"),
        (b"db", b"stderr", b"oops", b"3"),
    }
    assert all(e["POD_UUID"] == b"u1" and e["SYSLOG_IDENTIFIER"] == e["NSPOD_APP"] for e in journal)


def test_raw_output_passes_as_it_comes(tmp_path: Path) -> None:
    made, out, _, journal = relay(tmp_path, ["sh"], raw=True)
    conn = connect(tmp_path / "io", 0, Stream.STDOUT)
    conn.sendall(b"prompt> ")
    conn.close()
    made.finish()
    assert out.getvalue() == b"prompt> " and [e["MESSAGE"] for e in journal] == [b"prompt> "]


def test_stdin_is_paced_ended_and_what_a_hook_left_goes_to_the_app(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)  # far more than a socket buffer holds
    read_end, write_end = os.pipe()
    made, _, _, _ = relay(tmp_path, ["cat"], stdin=True, inp=read_end)
    hook = connect(tmp_path / "io", 0, Stream.STDIN)  # a pre-start hook connects first and ends
    hook.close()
    app = connect(tmp_path / "io", 0, Stream.STDIN)

    def write() -> None:
        os.write(write_end, data)
        os.close(write_end)

    writer = threading.Thread(target=write)
    writer.start()
    received = bytearray()
    while chunk := app.recv(65536):
        received += chunk
    writer.join()
    made.finish()
    assert bytes(received) == data  # all of it, then the end (recv returned b"")
    os.close(read_end)


def test_long_lines_are_split_for_the_journal(tmp_path: Path) -> None:
    made, out, _, journal = relay(tmp_path, ["big"])
    conn = connect(tmp_path / "io", 0, Stream.STDOUT)
    conn.sendall(b"x" * 100_000 + b"\n")
    conn.close()
    made.finish()
    assert out.getvalue().count(b"big: ") >= 2
    assert b"".join(e["MESSAGE"] for e in journal) == b"x" * 100_000
    assert max(len(e["MESSAGE"]) for e in journal) <= 48 * 1024
