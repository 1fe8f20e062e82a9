"""sd_notify from nspod pod exec: a real datagram socket stands in for the service manager."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from stage0.host import notify


def test_keep_alive_extends_the_start_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setattr(notify, "EXTEND_EVERY", 0.05)
        with notify.keep_alive("fetching"):
            first, second = manager.recv(4096).decode(), manager.recv(4096).decode()
        assert first == second == "EXTEND_TIMEOUT_USEC=30000000\nSTATUS=fetching"
        assert notify.notify("READY=1")
        assert manager.recv(4096) == b"READY=1"


def test_without_a_service_manager_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.notify("READY=1") is False
    with notify.keep_alive("x"):
        pass
