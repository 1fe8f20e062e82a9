"""stage1's ``logs`` entry point: a pod's output from the host's journal, which outlives the pod."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from stage1.abi import PodPaths, PodSpec
from stage1.journal import Follower, Window
from stage1.poddir import load

POLL = 0.2  # seconds between looks at whether the pod still runs


def journal_match(spec: PodSpec, paths: PodPaths) -> tuple[str, str]:
    """The journal field and value of the pod's lines: the POD_UUID= its transient unit adds, or,
    for pod@NAME (one unit file for every run of NAME), the run's invocation ID."""
    try:
        with open(paths.invocation) as file:
            invocation = file.read().strip()
    except FileNotFoundError:
        invocation = ""
    return ("_SYSTEMD_INVOCATION_ID", invocation) if invocation else ("POD_UUID", spec.uuid)


class Liveness:
    """Whether the pod runs: its nspawn holds ``lock``, its starter ``starting`` (ABI.md); the
    files are opened once, so a pod dir that moves on (exited, gc) is still watched."""

    def __init__(self, paths: PodPaths) -> None:
        self._fds = []
        for path in (paths.lock, paths.starting):
            with contextlib.suppress(OSError):
                self._fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))

    def running(self) -> bool:
        for fd in self._fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)  # never in the way of whoever locks it next
        return False

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)


def logs(pod_dir: str, *, follow: bool, app: str | None = None, window: Window | None = None) -> int:
    """The pod's output as ``run`` shows it, or ``app``'s alone, from the host's journal (it
    outlives the pod); following ends when the pod has ended and its last lines are printed."""
    spec, paths = load(pod_dir)
    alive = Liveness(paths)
    follower = Follower(*journal_match(spec, paths), app=app, window=window)
    try:
        while follow and alive.running() and not follower.past:
            time.sleep(POLL)
        unit = _read(paths.unit) if follow else None
        follower.finish(unit)  # the pod's stream read to its end by journald, then the rest
    finally:
        alive.close()
    return 0


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip() or None
    except OSError:
        return None
