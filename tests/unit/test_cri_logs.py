"""CRI container logs: the in-pod writer's format, partial lines, and the host's side
(stage0/cri/logs.py). The writer at work and its units: tests/unit/test_cri_stdio.py."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from stage0.cri import logs
from stage1.abi import Error


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
