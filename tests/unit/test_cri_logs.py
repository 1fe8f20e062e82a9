"""CRI container logs: the in-pod writer's format, partial lines, rotation, and the host's side
(stage0/cri/logs.py); the writer's units (stage1/crilog.py)."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from stage0.cri import logs
from stage1.abi import AppSpec, Error
from stage1.app_unit import app_unit
from stage1.crilog import writer_unit


def _writer() -> ModuleType:
    path = Path(__file__).parents[2] / "stage1" / "scripts" / "cri_log.py"
    spec = importlib.util.spec_from_file_location("cri_log", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


W = _writer()


def test_timestamp_is_gos_rfc3339nano() -> None:
    assert W.timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert W.timestamp(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"  # zeros dropped, as Go does
    assert W.timestamp(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


def test_a_record_parses_back() -> None:
    line = W.record(1_700_000_000_123_456_789, "stderr", "F", b"hello world")
    assert line == b"2023-11-14T22:13:20.123456789Z stderr F hello world\n"
    parsed = logs.parse_line(line)
    assert parsed.stream == "stderr" and not parsed.partial and parsed.text == b"hello world"
    assert parsed.time == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


def test_whole_lines_and_parts() -> None:
    splitter = W.Splitter(limit=8)
    assert splitter.feed(b"one\ntw") == [("F", b"one")]
    assert splitter.feed(b"o\r\n") == [("F", b"two")]  # CRLF ends a line as LF does
    assert splitter.feed(b"") == []
    # longer than the limit: parts tagged P, the rest F at its newline
    assert splitter.feed(b"0123456789abcdefXY\n") == [("P", b"01234567"), ("P", b"89abcdef"), ("F", b"XY")]
    assert splitter.feed(b"12345678\n") == [("F", b"12345678")]  # exactly the limit: whole
    assert splitter.feed(b"\n") == [("F", b"")]  # an empty line is a line
    assert splitter.feed(b"tail") == []
    assert splitter.end() == [("F", b"tail")]  # the stream ended without a newline
    assert splitter.end() == []


def test_journal_stream_header() -> None:
    # identifier, unit, priority, level prefix, to syslog, to kmsg, to console (journald's order)
    assert W.journal_header("web") == b"web\n\n6\n0\n0\n0\n1\n"


def test_journal_stream(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "stdout"))
        server.listen(1)
        client = W.journal_stream("web", str(tmp_path / "stdout"))
        assert client is not None
        client.close()
        connection, _ = server.accept()
        assert connection.recv(100) == b"web\n\n6\n0\n0\n0\n1\n"
        connection.close()
    assert W.journal_stream("web", str(tmp_path / "missing")) is None


def _connect(path: str) -> socket.socket:
    deadline = time.monotonic() + 5
    while True:
        try:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(path)
            return client
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def test_the_writer_end_to_end(tmp_path: Path) -> None:
    """What systemd does to it: connect the app's stdout and stderr, write, end; then the file is
    whole and the sockets gone (what the reaper waits for). A rename with a new file at the path
    (kubelet's rotation, ReopenContainerLog) moves the writer to the new file."""
    sockets, path = tmp_path / "sockets", tmp_path / "logs" / "0.log"
    path.parent.mkdir()
    writer = threading.Thread(
        target=W.main, args=("web", str(path), str(sockets), str(tmp_path / "no-journal"))
    )
    writer.start()
    out, err = _connect(str(sockets / "web.out")), _connect(str(sockets / "web.err"))
    out.sendall(b"first\n")
    err.sendall(b"oops\n")
    deadline = time.monotonic() + 5
    while len(logs.read_lines(str(path))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(logs.read_lines(str(path))) == [("stderr", b"oops"), ("stdout", b"first")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    os.rename(path, str(path) + ".1")
    out.sendall(b"to the old file\n")  # renamed, not reopened yet: the old file takes it
    while len(logs.read_lines(str(path) + ".1")) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    logs.reopen(str(path), running=True)
    assert path.exists()
    out.sendall(b"x" * 20000 + b"\nlast")
    out.close()
    err.close()
    writer.join(5)
    assert not writer.is_alive()
    assert not (sockets / "web.out").exists() and not (sockets / "web.err").exists()
    assert logs.read_lines(str(path) + ".1")[-1] == ("stdout", b"to the old file")
    assert logs.read_lines(str(path)) == [("stdout", b"x" * 20000), ("stdout", b"last")]
    tags = [line.split(b" ")[2] for line in path.read_bytes().splitlines()]
    assert tags == [b"P", b"F", b"F"]  # 16 KiB, then the rest of the long line, then the last


def test_container_log_path() -> None:
    assert logs.container_log_path("/var/log/pods/a", "web/0.log") == "/var/log/pods/a/web/0.log"
    assert logs.container_log_path("/var/log/pods/a", "/var/log/pods/a/web.log") == "/var/log/pods/a/web.log"
    assert logs.container_log_path("", "web/0.log") == ""
    assert logs.container_log_path("/var/log/pods/a", "") == ""
    for bad in ("../b/0.log", "/etc/shadow", "web/../../0.log"):
        with pytest.raises(logs.LogPathError):
            logs.container_log_path("/var/log/pods/a", bad)
    with pytest.raises(logs.LogPathError):
        logs.container_log_path("relative", "0.log")


def test_log_file_made_and_reopened(tmp_path: Path) -> None:
    path = tmp_path / "web" / "0.log"
    logs.create_log_file(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes() == b""
    path.write_bytes(b"kept\n")
    logs.create_log_file(str(path))  # one that is there stays as it is
    assert path.read_bytes() == b"kept\n"
    with pytest.raises(logs.NotRunning):
        logs.reopen(str(path), running=False)
    os.symlink("/etc/passwd", tmp_path / "link.log")
    with pytest.raises(Error, match="cannot create"):
        logs.create_log_file(str(tmp_path / "link.log"))  # a planted link is never followed
    logs.remove_log_file(str(path))
    assert not path.exists()


APP = AppSpec(name="web", rootfs="/r", exec=("/bin/sh",), log_path="/var/log/pods/a/web/0.log")


def test_the_app_writes_to_its_writer() -> None:
    settings = {k: v for _, k, v in app_unit(APP) if k.startswith("Standard")}
    assert settings == {
        "StandardOutput": "file:/run/nspod/crilog/web.out",
        "StandardError": "file:/run/nspod/crilog/web.err",
    }
    unit = app_unit(APP)
    assert ("Unit", "Requires", "cri-log-web.service") in unit
    assert ("Unit", "After", "cri-log-web.service") in unit
    plain = {k: v for _, k, v in app_unit(AppSpec(name="web", rootfs="/r", exec=("/bin/sh",)))}
    assert plain["StandardOutput"] == "journal+console"  # no log path: as before


def test_writer_unit() -> None:
    unit = {k: v for _, k, v in writer_unit(APP)}
    assert unit["Type"] == "notify"
    assert unit["ExecStart"] == "/usr/bin/python3 -I -S /nspod/bin/cri-log web /nspod/crilog/web/0.log"
    assert unit["RequiresMountsFor"] == "/nspod/crilog/web"
