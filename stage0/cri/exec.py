"""A command run in a CRI container — ExecSync, and the process behind a streaming Exec — kept in
the app's confinement exactly as ``nspod enter --app`` keeps it: stage1's enter path builds the
command line (a transient unit of the pod's systemd with the app's root, user, capabilities,
seccomp filter and limits), and we spawn it instead of exec'ing it.

Each exec gets a unit name of its own, so a timeout can kill what it started inside the pod (killing
systemd-run alone would leave the command running there).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import secrets
import struct
import termios
import threading
import time

from stage0.errors import Error, ErrorKind, InvalidArgumentError
from stage0.host.executor import kill_unit
from stage0.host.runner import DEVNULL, PIPE, Timeout, spawn
from stage0.host.stage1client import Stage1Client

SETSID = "/usr/bin/setsid"
OUTPUT_MAX = 16 << 20  # what ExecSync keeps of each stream (kubelet's own cap is 16 MiB)


class ExecTimeout(Error):
    """ExecSync's command outlived its timeout and was killed (gRPC DEADLINE_EXCEEDED)."""

    hint = "give the command a longer timeout, or make it end sooner"
    kind = ErrorKind.DEADLINE_EXCEEDED


class Process:
    """A command running in app ``app`` of the running pod at ``pod_dir``. Without a tty its
    stdin, stdout and stderr are pipes (or /dev/null where not wanted); with one, a pty whose
    master is both ``stdin`` and ``stdout`` and whose size follows :meth:`resize`."""

    def __init__(
        self,
        pod_dir: str,
        app: str,
        cmd: list[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> None:
        if not cmd:
            raise InvalidArgumentError("exec needs a command", hint="give the command and its arguments")
        self.unit = f"nspod-exec-{secrets.token_hex(8)}.service"
        argv, self.machine = Stage1Client.recorded(pod_dir).enter_command(
            app, cmd, tty=tty, term="xterm", unit=self.unit
        )
        self.tty = tty
        self._master = -1
        self.stdin: int | None = None
        self.stdout: int | None = None
        self.stderr: int | None = None
        if tty:
            self._master, slave = pty.openpty()
            os.set_inheritable(slave, False)
            try:
                # a session of its own with the pty as its controlling terminal: a resize reaches
                # systemd-run as SIGWINCH, which passes it on to the pod's pty
                self.popen = spawn(
                    [SETSID, "--ctty", "--wait", *argv], stdin=slave, stdout=slave, stderr=slave
                )
            except BaseException:
                os.close(self._master)
                raise
            finally:
                os.close(slave)
            self.stdin = self._master if stdin else None
            self.stdout = self._master
            return

        def pipe(wanted: bool) -> int:
            return PIPE if wanted else DEVNULL

        self.popen = spawn(argv, stdin=pipe(stdin), stdout=pipe(stdout), stderr=pipe(stderr))
        self.stdin = self.popen.stdin.fileno() if self.popen.stdin else None
        self.stdout = self.popen.stdout.fileno() if self.popen.stdout else None
        self.stderr = self.popen.stderr.fileno() if self.popen.stderr else None

    def close_stdin(self) -> None:
        """The client's input ended: the command reads EOF (a tty's line discipline has no EOF to
        give but ^D, which a raw-mode program would take as a key; the tty stays open)."""
        if not self.tty and self.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self._master >= 0:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """Ends the command inside the pod (its unit, every process in it), then systemd-run. On a
        loaded machine the first kill can come before systemd-run has the unit started: it is
        killed again while systemd-run waits, and once systemd-run is gone, until it is no more."""
        kill_unit(self.machine, self.unit)
        for wait in (2, 8):
            try:
                self.popen.wait(wait)
                break
            except Timeout:
                kill_unit(self.machine, self.unit)
        else:
            self.popen.kill()
            self.popen.wait()
        deadline = time.monotonic() + 10  # a unit being torn down is still there for a moment
        while kill_unit(self.machine, self.unit) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1


def exec_sync(pod_dir: str, app: str, cmd: list[str], timeout: float) -> tuple[bytes, bytes, int]:
    """Runs ``cmd`` in the app to its end: (stdout, stderr, exit code). ``timeout`` seconds at
    most (0: none); past it the command is killed and ExecTimeout raised."""
    process = Process(pod_dir, app, cmd, stdin=False)
    outputs: dict[int, bytes] = {}

    def drain(fd: int) -> None:
        kept = bytearray()
        while chunk := os.read(fd, 65536):
            if len(kept) < OUTPUT_MAX:
                kept += chunk[: OUTPUT_MAX - len(kept)]
        outputs[fd] = bytes(kept)

    readers = [
        threading.Thread(target=drain, args=(fd,), daemon=True)
        for fd in (process.stdout, process.stderr)
        if fd
    ]
    for reader in readers:
        reader.start()
    try:
        try:
            code = process.wait(timeout if timeout > 0 else None)
        except Timeout:
            process.kill()
            raise ExecTimeout(f"command {' '.join(cmd)!r} timed out after {timeout:g} s") from None
        for reader in readers:
            reader.join()
        return outputs.get(process.stdout or -1, b""), outputs.get(process.stderr or -1, b""), code
    finally:
        process.close()
