"""A fly pod's host units as data (pure; issue #25's ``--stage1=fly``): the pod's own unit, whose
main process is its supervisor (stage1/fly/pod.py), and each app a transient unit of the host's
systemd bound to it: ``RootDirectory=`` its rendered root (an overlay, as in an nspawn pod), the
app profile an nspawn pod's app gets, the host's network and PID namespace, no machine. Its
output goes to the journal marked with the pod's UUID, as an nspawn pod's lines are."""

from __future__ import annotations

import os

from stage1 import hostplan as plan
from stage1.abi import AppSpec, PodSpec, unit_name
from stage1.app_unit import pod_etc, profile
from stage1.escape import command
from stage1.transient import ExecCommand, ServiceType, TransientService

Volumes = tuple[tuple[str, str, bool], ...]


def pod_unit(spec: PodSpec) -> str:
    """The host unit of a fly pod ``nspod run`` started (pod@NAME's is its own)."""
    return unit_name(spec.machine)


def pod_service(spec: PodSpec, pod_dir: str, python: str) -> TransientService:
    """The pod's unit: its supervisor starts the apps, waits for them and ends with their code;
    it says READY=1 once every app started."""
    return TransientService(
        name=pod_unit(spec),
        exec_start=(ExecCommand.of(python, "-m", "stage1.fly.pod", "supervise", os.path.abspath(pod_dir)),),
        description=f"nspod fly pod {spec.machine}",
        type=ServiceType.NOTIFY,
        notify_access="main",
        log_extra_fields=(("POD_UUID", spec.uuid),),
    )


def settings(
    spec: PodSpec, app: AppSpec, place: plan.Place, volumes: Volumes, hidden: tuple[str, ...]
) -> list[tuple[str, str]]:
    """What the app's unit and every command entered into it share: bound to the pod's unit, its
    root and profile, in the host's namespaces (IPC too), its volumes."""
    return [
        ("BindsTo", place.pod_unit),
        *profile(app, hidden, pod_etc(spec), root=place.root, etc_dir=place.etc),
        *plan.binds(volumes),
    ]


def app_argv(
    spec: PodSpec, app: AppSpec, place: plan.Place, volumes: Volumes, hidden: tuple[str, ...]
) -> list[str]:
    """``systemd-run``'s command line that starts the app's host unit; returns once it runs."""
    own = [
        ("After", place.pod_unit),
        *settings(spec, app, place, volumes, hidden),
        # the app's event handlers (appc pre-start, post-stop), in its root and profile as in a
        # pod; its post-stop runs as its unit stops, which the supervisor asks once it ended
        *(("ExecStartPre", command(c)) for c in app.pre_start),
        *(("ExecStopPost", command(c)) for c in app.post_stop),
        ("StandardOutput", "journal"),
        ("StandardError", "journal"),
        ("SyslogIdentifier", app.name),
        ("LogExtraFields", f"POD_UUID={spec.uuid}"),
        ("TimeoutStopSec", f"{app.stop_timeout:g}s"),  # then SIGKILL
        *((("KillSignal", app.stop_signal),) if app.stop_signal else ()),
        # kept once its process ended, so the supervisor reads how it ended
        ("RemainAfterExit", "yes"),
    ]
    return [
        plan.SYSTEMD_RUN,
        "--quiet",
        "--service-type=exec",
        f"--unit={plan.unit_name(spec, app.name)}",
        f"--description=nspod fly app {app.name} of pod {spec.machine}",
        # systemd-run's -p reads a unit file's quoting but expands no specifiers
        *(f"--property={key}={value.replace('%%', '%')}" for key, value in own),
        "--",
        *app.exec,
    ]


def exit_of(how: str, status: int) -> tuple[int, int | None]:
    """An app's exit code as an nspawn pod's reaper records it, and the signal that ended it:
    ``exited 3`` is 3, ``killed 15`` 143 (a shell's ``$?``)."""
    if how == "exited":
        return status, None
    return 128 + status, status


def pod_code(ended: list[int]) -> int:
    """The pod's exit code from its apps' in the order they ended: the first failing one's."""
    return next((code for code in ended if code != 0), 0)
