"""The sd_notify protocol, spoken to the service manager that started us (``$NOTIFY_SOCKET``).

``pod@NAME.service`` is ``Type=notify``: while nspod fetches images before the pod can start, it
keeps pushing the start timeout out (``EXTEND_TIMEOUT_USEC``) and says what it does (``STATUS``).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

EXTEND_EVERY = 10.0  # seconds between two extensions
EXTEND_BY = 30  # seconds each extension grants


def notify(message: str) -> bool:
    """Send one notification; False when there is no service manager listening."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


@contextmanager
def keep_alive(status: str) -> Iterator[None]:
    """Extend the start timeout every few seconds while the block runs (and say ``status``)."""
    if not os.environ.get("NOTIFY_SOCKET"):
        yield
        return
    done = threading.Event()

    def extend() -> None:
        while True:
            notify(f"EXTEND_TIMEOUT_USEC={EXTEND_BY * 1_000_000}\nSTATUS={status}")
            if done.wait(EXTEND_EVERY):
                return

    thread = threading.Thread(target=extend, name="nspod-notify", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
