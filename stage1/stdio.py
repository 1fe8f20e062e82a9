"""Where a pod's apps read and write, as data: the apps' unit settings and nspawn's options for
each way a pod can run (pure; stage1/attach.py does the relaying).

A detached pod (and every ``pod@``) writes to the journal, and through the pod's console to the
host's journal, which is where ``nspod logs`` reads it. A foreground pod is *attached*: each
app's stdout and stderr are connected (systemd's ``file:`` on an AF_UNIX socket) to sockets the
foreground nspod listens on, so stdout reaches nspod's stdout and stderr its stderr, apart, and
nspod copies every line to the journal; with ``--interactive`` the app's stdin is nspod's too.
With ``--tty`` the caller's terminal becomes the pod's console (nspawn's interactive console)
and the app's controlling terminal, as with ``machinectl login``.
"""

from __future__ import annotations

import enum
import os

from stage1.escape import nspawn_bind

IO_DIR = "/run/nspod/io"  # where the sockets are bound inside the pod (the stage1 namespace)


class Stdio(enum.StrEnum):
    JOURNAL = "journal"  # detached: the journal only
    ATTACHED = "attached"  # foreground: stdout and stderr relayed apart; stdin /dev/null
    INTERACTIVE = "interactive"  # foreground, stdin relayed too (one app)
    TTY = "tty"  # foreground, the caller's terminal is the app's (one app)

    @property
    def relayed(self) -> bool:
        return self in (Stdio.ATTACHED, Stdio.INTERACTIVE)

    @property
    def single_app(self) -> bool:
        """Only one app can own the caller's stdin."""
        return self in (Stdio.INTERACTIVE, Stdio.TTY)


class Stream(enum.StrEnum):
    STDIN = "in"
    STDOUT = "out"
    STDERR = "err"


def socket_name(index: int, stream: Stream) -> str:
    """Short names by the app's place in the pod: socket paths are limited to 107 bytes."""
    return f"{index}.{stream}"


def app_stdio(stdio: Stdio, index: int) -> list[tuple[str, str]]:
    """The ``[Service]`` settings that wire app number ``index``'s stdin, stdout and stderr."""
    if stdio is Stdio.TTY:
        # tty-force: the app takes the console even if something else holds it (nothing should)
        tty = [("StandardInput", "tty-force"), ("StandardOutput", "tty"), ("StandardError", "tty")]
        return [*tty, ("TTYPath", "/dev/console")]
    if stdio.relayed:

        def socket(stream: Stream) -> str:
            return "file:" + os.path.join(IO_DIR, socket_name(index, stream))

        wired = [("StandardOutput", socket(Stream.STDOUT)), ("StandardError", socket(Stream.STDERR))]
        return [("StandardInput", socket(Stream.STDIN)), *wired] if stdio is Stdio.INTERACTIVE else wired
    return [("StandardOutput", "journal+console"), ("StandardError", "journal+console")]


def nspawn_stdio(stdio: Stdio, io_dir: str) -> list[str]:
    """nspawn's options for ``stdio``; ``io_dir``: the host directory holding the sockets."""
    if stdio is Stdio.TTY:
        return ["--console=interactive"]
    if stdio.relayed:
        return [nspawn_bind("--bind", io_dir, IO_DIR)]
    return []
