"""A program run on a terminal of its own (a pty), as a user at a shell runs crictl exec -t."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time


def in_terminal(
    argv: list[str], *, size: tuple[int, int] | None = None, timeout: float = 60
) -> tuple[bytes, int]:
    """Everything ``argv`` wrote to its terminal (of ``size`` rows and columns) and its exit code."""
    pid, master = pty.fork()
    if pid == 0:
        if size:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        os.execv(argv[0], argv)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:
            break
        if ready and not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return output, os.waitstatus_to_exitcode(status)
