"""A pod's life as events (stage1/events.py), from the host's side: ``start`` when stage1 starts
its unit, ``ready`` when a detached pod's unit became active (nspawn's READY=1), and at its end,
run by the unit's ``ExecStopPost=``, one ``exited`` per app that ran (its code and signal, as the
app's reaper recorded them in ``status/``, in the order they ended), then ``stop``.

The end is a shell script written at the start (``/run/nspod/events/<unit>``), sending each entry
with ``logger --journald``: a few small processes on every pod's stop path rather than a Python
start (~100 ms, more on a busy host). Nothing is opened into the pod for this: the reaper inside
writes the status files it always has, and the host reads them once the pod has ended, so an
app's ``exited`` is logged when its pod ends (its own time in ``NSPOD_EXITED``).
"""

from __future__ import annotations

import os
import shlex
import time

from stage1.abi import PodPaths, PodSpec
from stage1.atomic import write_atomic
from stage1.events import emit, entry
from stage1.transient import ExecCommand

LOGGER = "/usr/bin/logger"  # util-linux: sends the FIELD=value lines on its stdin as one entry
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


def _fields(event: str, **fields: object) -> str:
    """An entry's fixed fields as quoted ``FIELD=value`` words (MESSAGE aside: the script's own)."""
    return " ".join(
        shlex.quote(f"{k}={v.decode()}") for k, v in entry(event, fields).items() if k != "MESSAGE"
    )


def end_script(spec: PodSpec, paths: PodPaths, logger: str = LOGGER) -> str:
    """The script that logs the pod's end (see the module's docstring); ``$SERVICE_RESULT`` and
    ``$EXIT_STATUS`` are systemd's, for ``ExecStopPost=``."""
    pod = {"pod": spec.uuid, "pod_name": spec.machine}
    calls = {
        shlex.quote(app.name): f"exited {shlex.quote(app.name)} {_fields('exited', **pod, app=app.name)}"
        for app in spec.apps
    }
    cases = "".join(f"    {name}) {call} ;;\n" for name, call in calls.items())
    stop = _fields("stop", **pod)
    # one app: nothing to order (and no ls on its way out)
    order = (
        next(iter(calls.values()))
        if len(calls) == 1
        else f"""for name in $(ls -1tr "$status" 2>/dev/null); do  # oldest first: in the order they ended
    case $name in
{cases}    esac
done"""
    )
    return f"""# the end of pod {spec.machine} as events (stage1/lifecycle.py)
status={shlex.quote(paths.status)} pod_name={shlex.quote(spec.machine)}
log() {{ {shlex.quote(logger)} --journald; }}
exited() {{  # APP FIELD=value...: its exit as its reaper recorded it, if it ran
    app=$1 code='' signal='' reason=''; shift
    # read, not cat: no process per file on every pod's way out
    {{ read -r code <"$status/$app"; }} 2>/dev/null
    case $code in '' | *[!0-9]*) return 0 ;; esac
    {{ read -r signal <"$status/$app.signal"; }} 2>/dev/null
    {{ read -r reason <"$status/$app.reason"; }} 2>/dev/null
    {{
        printf '%s\\n' "MESSAGE=nspod pod $pod_name: app $app exited with $code" "$@" "NSPOD_EXIT_CODE=$code"
        [ -z "$signal" ] || printf 'NSPOD_SIGNAL=SIG%s\\n' "$(kill -l "$signal")"
        [ -z "$reason" ] || printf 'NSPOD_REASON=%s\\n' "$reason"
        printf 'NSPOD_EXITED=%s\\n' "$(stat -c %.6Y "$status/$app")"
    }} | log
}}
{order}
{{
    printf '%s\\n' "MESSAGE=nspod pod $pod_name: stop${{SERVICE_RESULT:+ ($SERVICE_RESULT)}}" {stop}
    [ -z "$SERVICE_RESULT" ] || printf 'NSPOD_RESULT=%s\\n' "$SERVICE_RESULT"
    [ -z "$EXIT_STATUS" ] || printf 'NSPOD_EXIT_STATUS=%s\\n' "$EXIT_STATUS"
}} | log
rm -f "$0" "$0.ready"  # logged once: the unit's next run writes its own
"""


def ready_script(spec: PodSpec, logger: str = LOGGER) -> str:
    """What pod@'s ``ExecStartPost=`` runs once nspawn said READY=1 (a transient pod's ``run
    --detach`` waits for that itself and calls :func:`ready`)."""
    fields = " ".join(shlex.quote(f"{k}={v.decode()}") for k, v in entry("ready", _pod(spec)).items())
    return f"printf '%s\\n' {fields} | {shlex.quote(logger)} --journald\n"


def _pod(spec: PodSpec) -> dict[str, object]:
    return {"pod": spec.uuid, "pod_name": spec.machine}


def mark_started(spec: PodSpec, paths: PodPaths, unit: str, *, at_unit: bool = False) -> None:
    """The pod's start time (``started``), the script that will log its end (and for a pod@ unit,
    ``at_unit``, the one that logs its readiness), and ``start``."""
    with open(paths.started, "w") as file:
        file.write(f"{time.time()}\n")
    os.makedirs(EVENTS_DIR, mode=0o755, exist_ok=True)
    write_atomic(script_path(unit), end_script(spec, paths).encode(), mode=0o644, sync=False)
    if at_unit:
        write_atomic(script_path(unit) + ".ready", ready_script(spec).encode(), mode=0o644, sync=False)
    emit("start", pod=spec.uuid, pod_name=spec.machine, unit=unit)


def ready(uuid: str, machine: str) -> None:
    emit("ready", pod=uuid, pod_name=machine)
