"""A pod's life as events (stage1/events.py), from the host's side: ``start`` when stage1 starts
its unit, ``ready`` when a detached pod's unit became active (nspawn's READY=1), and at its end,
run by the unit's ``ExecStopPost=`` (``python3 -m stage1.lifecycle POD_DIR UNIT``), one ``exited`` per app
that ran (its code and signal, as the app's reaper recorded them in ``status/``), then ``stop``.

Nothing is opened into the pod for this: the reaper inside writes the status files it always has,
and the host reads them once the pod has ended. So an app's ``exited`` is logged when its pod
ends (its own time in ``NSPOD_EXITED``), not the moment the app ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import time

from stage1.abi import PodPaths, PodSpec, signal_name
from stage1.atomic import read_text, write_atomic
from stage1.events import emit
from stage1.transient import ExecCommand

EVENTS_DIR = "/run/nspod/events"  # <unit name>: the script the unit's ExecStopPost= runs


def script_path(unit: str) -> str:
    return os.path.join(EVENTS_DIR, unit)


def stop_post(unit: str) -> ExecCommand:
    """The unit's ``ExecStopPost=`` that logs the pod's end, through the script :func:`mark_started`
    wrote (as units/pod@.service runs it, and with no interpreter path in the unit); failures
    ignored: an event never fails the pod."""
    path = shlex.quote(script_path(unit))
    argv = ("/bin/sh", "-c", f"test ! -e {path} || exec /bin/sh {path}")
    return ExecCommand(argv[0], argv, ignore_failure=True)


def end_script(pod_dir: str, unit: str) -> str:
    """``-I``: no environment or working directory of the unit's steers the interpreter."""
    argv = [sys.executable, "-I", "-m", "stage1.lifecycle", os.path.abspath(pod_dir), unit]
    return f"exec {shlex.join(argv)}\n"


def mark_started(spec: PodSpec, paths: PodPaths, unit: str) -> None:
    """The pod's start time (``started``), the script that will log its end, and ``start``."""
    with open(paths.started, "w") as file:
        file.write(f"{time.time()}\n")
    os.makedirs(EVENTS_DIR, mode=0o755, exist_ok=True)
    write_atomic(script_path(unit), end_script(paths.root, unit).encode(), mode=0o644, sync=False)
    emit("start", pod=spec.uuid, pod_name=spec.machine, unit=unit)


def ready(uuid: str, machine: str) -> None:
    emit("ready", pod=uuid, pod_name=machine)


def app_ends(paths: PodPaths, apps: list[str]) -> list[dict[str, object]]:
    """The recorded end of each app that has one: code, signal, reason, time."""
    ends: list[dict[str, object]] = []
    for app in apps:
        path = os.path.join(paths.status, app)
        code = (read_text(path) or "").strip()
        if not code.isdigit():
            continue  # never started, or the pod was killed before its reaper ran
        reason = (read_text(path + ".reason") or "").strip() or None
        try:
            when: float | None = round(os.path.getmtime(path), 6)
        except OSError:
            when = None
        signal = signal_name(read_text(paths.app_signal(app)))
        ends.append({"app": app, "exit_code": int(code), "signal": signal, "reason": reason, "exited": when})
    return ends


def ended(pod_dir: str, unit: str) -> None:
    paths = PodPaths(pod_dir)
    try:
        with open(paths.spec) as file:
            spec = json.load(file)
    except (OSError, ValueError):
        return  # removed meanwhile: nothing left to tell
    uuid, machine = spec.get("uuid"), spec.get("machine")
    apps = [str(app.get("name")) for app in spec.get("apps", [])]
    for end in sorted(app_ends(paths, apps), key=lambda e: (e["exited"] or 0.0, str(e["app"]))):
        emit("exited", pod=uuid, pod_name=machine, **end)
    result = os.environ.get("SERVICE_RESULT")  # systemd's, for ExecStopPost=
    code = os.environ.get("EXIT_STATUS")
    emit("stop", pod=uuid, pod_name=machine, result=result, exit_status=code)
    with contextlib.suppress(OSError):  # logged once: the next run of the unit writes its own
        os.unlink(script_path(unit))


if __name__ == "__main__":
    ended(sys.argv[1], sys.argv[2])
