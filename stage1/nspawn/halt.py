"""Asking a pod's systemd to shut down so that the request cannot be lost.

nspawn halts a pod by sending SIGRTMIN+3 to the pod's PID 1 once. The kernel delivers a signal to
a PID namespace's init only if init has a handler for it, so a request that comes before the pod's
systemd has set its handlers up (the first milliseconds of a boot) is dropped, and the pod runs on
until the host unit's stop timeout kills it. A blocked signal is queued all the same, and systemd
blocks the signals it reads through its signalfd. Here we wait until init blocks or catches the
signal (``SigBlk``/``SigCgt`` in ``/proc/PID/status``), then send it ourselves.
"""

from __future__ import annotations

import os
import signal
import time

HALT = signal.SIGRTMIN + 3  # systemd: start halt.target (what nspawn sends)


def leader(nspawn_pid: int) -> int | None:
    """The pod's PID 1 as the host sees it: nspawn's one child."""
    try:
        with open(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children") as file:
            children = file.read().split()
    except OSError:
        return None
    return int(children[0]) if len(children) == 1 else None


def hears(pid: int, signum: int) -> bool:
    """Whether a signal sent to ``pid`` as a namespace's init would reach it: blocked or caught."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith(("SigBlk:", "SigCgt:")) and int(line.split()[1], 16) >> (signum - 1) & 1:
                    return True
    except (OSError, ValueError):
        pass
    return False


def hearing(nspawn_pid: int, *, timeout: float = 30.0) -> int | None:
    """Wait until the pod under ``nspawn_pid`` can hear a halt request; its PID 1, or None when the
    pod ended first (or did not boot that far within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and os.path.exists(f"/proc/{nspawn_pid}"):
        init = leader(nspawn_pid)
        if init is not None and hears(init, HALT):
            return init
        time.sleep(0.01)
    return None


def halt(nspawn_pid: int, *, timeout: float = 30.0) -> bool:
    """Ask the pod under ``nspawn_pid`` to shut down in order, once its systemd can hear it;
    False when the pod ended first (or never booted within ``timeout``)."""
    init = hearing(nspawn_pid, timeout=timeout)
    if init is None:
        return False
    try:
        os.kill(init, HALT)
    except ProcessLookupError:
        return False
    return True
