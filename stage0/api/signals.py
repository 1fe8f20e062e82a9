"""``kill -s SIGNAL``: a signal by name or number, sent to an app's processes (KillUnit of its
unit in the pod's systemd, every process of it, as ``podman kill`` reaches the container's)."""

from __future__ import annotations

import signal

from stage0.api.processes import chosen_apps, running, spec_of
from stage0.errors import FailedPreconditionError, UsageError
from stage0.host.executor import fly_unit, signal_unit
from stage0.pods.dirs import Pod


def parse_signal(text: str) -> int:
    """``SIGTERM``, ``TERM``, ``term``, ``15``, ``RTMIN+3`` → the signal's number; UsageError
    otherwise (0, which tests a process's existence, is no signal to send here)."""
    word = text.strip().upper()
    name = word if word.startswith("SIG") else "SIG" + word
    if word.isdigit() and 0 < int(word) <= signal.SIGRTMAX:
        return int(word)
    if name in signal.Signals.__members__:
        return int(signal.Signals[name])
    offset = name.removeprefix("SIGRTMIN+")
    if offset != name and offset.isdigit() and signal.SIGRTMIN + int(offset) <= signal.SIGRTMAX:
        return signal.SIGRTMIN + int(offset)
    raise UsageError(f"unknown signal {text!r}", hint="give a name (TERM, SIGKILL, HUP…) or a number (15)")


def kill(pod: Pod, app: str | None, signum: int) -> tuple[str, ...]:
    """Send ``signum`` to the app (``None``: every app of the pod); the apps it reached. An app that
    is not running is skipped; FailedPrecondition when none was."""
    running(pod)
    spec = spec_of(pod)
    reached = []
    for name in chosen_apps(pod, app):
        if spec.host_pid:  # a hostPID sandbox's app is a unit of the host's (stage1/fly)
            sent = signal_unit(None, fly_unit(pod.uuid, name), signum)
        else:
            sent = signal_unit(spec.machine, f"{name}.service", signum)
        if sent:
            reached.append(name)
    if not reached:
        which = f"app {app}" if app else "no app"
        raise FailedPreconditionError(
            f"{which} of pod {pod.uuid} is not running" if app else f"{which} of pod {pod.uuid} is running",
            hint=f"see 'nspod status {pod.uuid[:8]}'",
        )
    return tuple(reached)
