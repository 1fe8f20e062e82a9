"""stage1/journal.py against a real journald: what a foreground ``nspod run`` prints."""

from __future__ import annotations

import io
import subprocess
import uuid

import pytest

from stage1.journal import Follower

pytestmark = pytest.mark.systemd


def send(field: str, value: str, message: str) -> None:
    entry = f"MESSAGE={message}\n{field}={value}\n"
    subprocess.run(["logger", "--journald"], input=entry, text=True, check=True, timeout=30)


def test_follower_prints_each_matching_entry_once_in_order() -> None:
    tag = uuid.uuid4().hex
    send("NSPOD_TEST", tag, "before the follower")  # the follower reads from the journal's head
    subprocess.run(["journalctl", "--sync"], check=True, timeout=30)
    out = io.BytesIO()
    follower = Follower("NSPOD_TEST", tag, out)
    send("NSPOD_TEST", tag, "while it follows")
    send("NSPOD_TEST", uuid.uuid4().hex, "another pod's line")
    send("NSPOD_TEST", tag, "  indented as it was")
    subprocess.run(["journalctl", "--sync"], check=True, timeout=30)
    follower.finish("nspod-test-no-such.service")  # no stream open: the last pass runs at once
    assert out.getvalue().splitlines() == [
        b"before the follower",
        b"while it follows",
        b"  indented as it was",
    ]
