"""An app's health check inside the pod: ``health-<app>.timer`` starts ``health-<app>.service``
every interval while the app runs, which runs ``/nspod/bin/health`` (stage1/scripts/health.py).
That program runs the check as ``enter`` runs a command: a transient unit of the pod's systemd
with the app's own profile (its root, user, capabilities, seccomp filter, hidden paths, limits:
stage1/app_unit.py ``profile``), so a check reaches nothing the app could not. It keeps the
state in ``/nspod/status/<app>.health`` (the pod directory's ``status/``, which stage0 reads),
logs each change to the journal, and acts on ``on_failure``.

The check's command line is planned here, purely, and handed over in ``/nspod/health/<app>.json``
rather than on ExecStart= (no second round of unit-file quoting for the profile's values).
"""

from __future__ import annotations

import json

from stage1.abi import AppSpec, HealthSpec, PodSpec
from stage1.app_unit import STATUS_DIR, pod_etc, profile
from stage1.enter import entered_argv
from stage1.unitfile import Entry, render, section

HEALTH = "/nspod/bin/health"
CONFIG = "/nspod/health/{app}.json"
STATE = STATUS_DIR + "/{app}.health"  # status/<app>.health in the pod directory
ON_FAILURE = ("none", "restart", "kill")
HOST_JOURNAL = "/run/nspod/host-journal"  # the host journal's socket, bound in for health events


def seconds(value: float) -> str:
    """A time span as systemd reads it (``1.5`` → ``1500ms``)."""
    return f"{round(value * 1000)}ms"


def check_argv(spec: PodSpec, app: AppSpec, health: HealthSpec, hidden: tuple[str, ...]) -> list[str]:
    """systemd-run waiting on the check in a transient unit of the app's own settings, ended by
    systemd when it outlasts the timeout (RuntimeMaxSec=: the unit, not just systemd-run, ends)."""
    settings = profile(app, hidden, pod_etc(spec), host_ipc=spec.host_ipc)
    settings += [("RuntimeMaxSec", seconds(health.timeout)), ("StandardInput", "null")]
    argv = entered_argv(
        app.name, settings, list(health.command), tty=False, term="dumb", unit="", machine=""
    )
    return [a.replace("--description=nspod enter", "--description=nspod health check of") for a in argv]


def config(spec: PodSpec, app: AppSpec, health: HealthSpec, hidden: tuple[str, ...]) -> str:
    """What /nspod/bin/health reads: the check's argv and the rules it applies."""
    return (
        json.dumps(
            {
                "pod": spec.machine,
                "uuid": spec.uuid,
                "app": app.name,
                "retries": health.retries,
                "start_period": health.start_period,
                "timeout": health.timeout,
                "on_failure": health.on_failure,
                "sandbox": spec.sandbox,
                "argv": check_argv(spec, app, health, hidden),
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )


def timer_unit(app: AppSpec, health: HealthSpec) -> list[Entry]:
    """Every interval after the last check ended (no overlap), from the app's start; PartOf= the
    app: stopped and restarted with it (a restart begins a new start period)."""
    return section(
        "Unit",
        ("Description", f"Health check of {app.name}, every {health.interval:g}s"),
        ("DefaultDependencies", "no"),
        ("PartOf", f"{app.name}.service"),
        ("After", f"{app.name}.service"),
    ) + section(
        "Timer",
        ("OnActiveSec", seconds(health.interval)),
        ("OnUnitInactiveSec", seconds(health.interval)),
        ("AccuracySec", "10ms"),  # the default, a minute, would swallow short intervals
        ("Unit", f"health-{app.name}.service"),
    )


def service_unit(app: AppSpec) -> list[Entry]:
    return section(
        "Unit",
        ("Description", f"Health check of {app.name}"),
        ("DefaultDependencies", "no"),
        ("RequiresMountsFor", STATUS_DIR),
    ) + section(
        "Service",
        ("Type", "oneshot"),
        ("ExecStart", f"{HEALTH} {CONFIG.format(app=app.name)}"),
    )


def health_files(spec: PodSpec, app: AppSpec, hidden: tuple[str, ...]) -> dict[str, tuple[str, int]]:
    """The tree's files for ``app``'s check (path → text, mode); none without one. The app's unit
    wants the timer through a drop-in, so it starts (and restarts) with the app."""
    health = app.health
    if health is None:
        return {}
    units = "etc/systemd/system"
    wants = section("Unit", ("Wants", f"health-{app.name}.timer"))
    return {
        HEALTH.lstrip("/"): (script_text(), 0o755),
        CONFIG.format(app=app.name).lstrip("/"): (config(spec, app, health, hidden), 0o644),
        f"{units}/health-{app.name}.timer": (render(timer_unit(app, health)), 0o644),
        f"{units}/health-{app.name}.service": (render(service_unit(app)), 0o644),
        f"{units}/{app.name}.service.d/health.conf": (render(wants), 0o644),
    }


def script_text() -> str:
    from importlib import resources

    return (resources.files("stage1") / "scripts" / "health.py").read_text()


def wants_host_journal(spec: PodSpec) -> bool:
    """Whether the pod gets the host journal's socket (its health events): only if an app has a check."""
    return any(app.health is not None for app in spec.apps)
