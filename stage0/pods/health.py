"""Health checks: what declares them, purely, and what a pod's check last found.

A check is declared by, lowest first: the image (appc annotations ``nspod.io/health-*``, which an
OCI image's ``Healthcheck`` becomes on pull, :func:`oci_annotations`), the pod manifest's app
annotations (the same names), and the pod file's keys or the app flags (``health-cmd`` …, named as
podman's flags and Quadlet's ``HealthCmd=``). Each key replaces the lower one's; ``cmd = "none"``
turns an image's check off. stage1/health.py runs it; its state is ``status/<app>.health``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stage0.errors import UsageError
from stage1.abi import AppSpec, HealthSpec

if TYPE_CHECKING:
    from stage0.pods.requests import AppRequest
    from stage0.schema.image import ImageManifest

PREFIX = "nspod.io/health-"
KEYS = ("cmd", "interval", "timeout", "retries", "start-period", "on-failure")
ON_FAILURE = ("none", "restart", "kill")
STATES = ("starting", "healthy", "unhealthy")
MAX_SECONDS = 86400.0
_SPAN = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# docker's defaults (podman's too): every 30 s, 30 s each, 3 failures in a row, no start period
DEFAULTS = {"interval": "30s", "timeout": "30s", "retries": "3", "start-period": "0s", "on-failure": "none"}


def duration(text: str, what: str) -> float:
    """Seconds from ``30``, ``2.5``, ``30s``, ``1m30s`` or ``500ms`` (Go's durations, as podman's)."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _SPAN.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise UsageError(f"bad {what} {text!r}: a duration such as 30s, 1m30s or 500ms", hint=f"{what}=30s")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def command(text: str, what: str = "health-cmd") -> tuple[str, ...] | None:
    """The check's argv: a JSON array is run as it is (exec form), other text by ``/bin/sh -c``
    (docker's CMD-SHELL); ``none``: no check."""
    value = text.strip()
    if value.lower() == "none":
        return None
    if value.startswith("["):
        try:
            argv = json.loads(value)
        except ValueError:
            argv = None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise UsageError(
                f"bad {what} {text!r}: a JSON array of strings", hint='["/bin/check", "--quick"]'
            )
        return tuple(argv)
    if not value:
        raise UsageError(f"{what} is empty", hint='give a command, e.g. --health-cmd="test -e /tmp/ok"')
    return ("/bin/sh", "-c", value)


def checked(key: str, value: str, where: str = "--health-") -> str:
    """``value`` of ``key``, refused with one line if it is bad; returned as it was given."""
    what = f"{where}{key}"
    if key not in KEYS:
        raise UsageError(f"unknown health setting {what}", hint=f"settings: {', '.join(KEYS)}")
    if key == "cmd":
        command(value, what)
    elif key == "retries":
        if not value.strip().isdigit() or not 1 <= int(value) <= 1000:
            raise UsageError(f"bad {what} {value!r}: a whole number from 1 to 1000", hint=f"{what}=3")
    elif key == "on-failure":
        if value not in ON_FAILURE:
            raise UsageError(f"bad {what} {value!r}", hint=f"one of: {', '.join(ON_FAILURE)}")
    else:
        seconds = duration(value, what)
        low_ok = key == "start-period"
        if seconds > MAX_SECONDS or (seconds <= 0 and not low_ok):
            raise UsageError(f"bad {what} {value!r}: more than 0 and at most a day", hint=f"{what}=30s")
    return value


def from_annotations(annotations: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The health keys among appc annotations (``nspod.io/health-interval`` → ``interval``)."""
    return {name[len(PREFIX) :]: value for name, value in annotations if name.startswith(PREFIX)}


def health_spec(layers: Iterable[tuple[str, Mapping[str, str]]]) -> HealthSpec | None:
    """The app's check from its declarations, lowest first (each ``(where, keys)``); None without
    a command. Every value is checked: a bad one is refused with where it came from."""
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for where, keys in layers:
        for key, value in keys.items():
            checked(key, value, where)
            merged[key], origin[key] = value, where
    if "cmd" not in merged:
        if merged:
            given = next(iter(origin.items()))
            raise UsageError(
                f"{given[1]}{given[0]} given, but no health check command",
                hint="give one with --health-cmd (or health-cmd in the pod file)",
            )
        return None
    argv = command(merged["cmd"])
    if argv is None:
        return None
    values = DEFAULTS | merged
    return HealthSpec(
        command=argv,
        interval=duration(values["interval"], "interval"),
        timeout=duration(values["timeout"], "timeout"),
        retries=int(values["retries"]),
        start_period=duration(values["start-period"], "start-period"),
        on_failure=values["on-failure"],
    )


def oci_annotations(healthcheck: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An OCI image config's ``Healthcheck`` as appc annotations: Test ``["CMD", …]`` (exec form),
    ``["CMD-SHELL", "…"]`` (a shell's) or ``["NONE"]`` (off); durations in nanoseconds, 0: unset."""
    out: list[tuple[str, str]] = []
    test = healthcheck.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        test = []  # malformed: no check from it (the rest of the image stands)
    if test and test[0] == "NONE":
        out.append(("cmd", "none"))
    elif len(test) > 1 and test[0] == "CMD":
        out.append(("cmd", json.dumps(list(test[1:]))))
    elif len(test) == 2 and test[0] == "CMD-SHELL":
        out.append(("cmd", str(test[1])))
    for key, field in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
        if isinstance(nanoseconds := healthcheck.get(field), int) and nanoseconds > 0:
            out.append((key, f"{nanoseconds / 1e9:g}s"))
    if isinstance(retries := healthcheck.get("Retries"), int) and retries > 0:
        out.append(("retries", str(retries)))
    return [(PREFIX + key, value) for key, value in out]


@dataclass(frozen=True, slots=True)
class HealthView:
    """What an app's check last found (``status/<app>.health``, written in the pod)."""

    status: str  # starting, healthy, unhealthy
    failing_streak: int
    last_exit_code: int | None
    last_output: str
    last_check: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failing_streak": self.failing_streak,
            "last_exit_code": self.last_exit_code,
            "last_output": self.last_output,
            "last_check": self.last_check,
        }


def read_health(status_dir: str, app: str) -> HealthView | None:
    """The app's health as its check recorded it; None: it has none (or none ran yet)."""
    try:
        with open(f"{status_dir}/{app}.health") as file:
            state = json.load(file)
        if state.get("status") not in STATES:
            return None
        return HealthView(
            status=state["status"],
            failing_streak=int(state.get("failing_streak", 0)),
            last_exit_code=state.get("last_exit_code"),
            last_output=str(state.get("last_output", "")),
            last_check=state.get("last_check"),
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def pod_health(spec_path: str, status_dir: str) -> dict[str, HealthView]:
    """Each checked app's health in a running pod: as recorded, else starting (no check ran yet)."""
    from stage1.abi import PodSpec

    try:
        with open(spec_path) as file:
            spec = PodSpec.from_json(file.read())
    except (OSError, ValueError, TypeError, KeyError):
        return {}
    starting = HealthView("starting", 0, None, "", None)
    return {a.name: read_health(status_dir, a.name) or starting for a in spec.apps if a.health is not None}


def declared_health(request: AppRequest, manifest: ImageManifest) -> HealthSpec | None:
    """The check of an app (an AppRequest) of an image (its ImageManifest): image < pod manifest < flags."""
    image = ((str(a.name), str(a.value)) for a in manifest.annotations)
    return health_spec(
        (
            (f"image {manifest.name}'s annotation {PREFIX}", from_annotations(image)),
            (f"the pod manifest's annotation {PREFIX}", from_annotations(request.annotations)),
            ("--health-", dict(request.health)),
        )
    )


def health_fields(app: AppSpec | None, recorded: HealthView | None, running: bool) -> dict[str, Any]:
    """``inspect``'s: the app's declared check (``healthcheck``, null: none) and what it last found
    (``health``: starting before its first check; null without a check or once the pod ended)."""
    declared = app.health if app is not None else None
    if declared is None:
        return {"healthcheck": None, "health": None}
    found = recorded or HealthView("starting", 0, None, "", None)
    return {
        "healthcheck": {
            "command": list(declared.command),
            "interval": declared.interval,
            "timeout": declared.timeout,
            "retries": declared.retries,
            "start_period": declared.start_period,
            "on_failure": declared.on_failure,
        },
        "health": found.as_json() if running else None,
    }
