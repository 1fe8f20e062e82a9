"""Auto-update, planned purely: what a pod's record says, what a fetch changed, whether a restarted
pod is ready, and the pod request a pinned pod starts with (stage0/api/autoupdate.py acts on it).

A pod file saying ``auto-update = "registry"`` follows its images' tags. Each pod has a record,
``DIR/auto-update/NAME.json``: ``pins`` maps an app's image reference (as the pod file writes it)
to the image ID ``pod exec`` starts it on, so a restart runs exactly the image auto-update chose,
and a rollback the one before; ``keep`` lists the IDs image removal and gc leave alone (the
current and the previous image of each reference: stage0/images/catalog.py images_in_use).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from stage0.host.atomic import write_atomic
from stage0.pods.requests import PodRequest

RECORD_DIR = "auto-update"  # under nspod's data directory
POLICY_REGISTRY = "registry"
DEFAULT_TIMEOUT = 60.0  # seconds a restarted pod has to become ready before it is rolled back


class Result(enum.StrEnum):
    """What auto-update did to one pod (the journal's NSPOD_RESULT)."""

    UPDATED = "updated"  # restarted on the new image, ready
    ROLLED_BACK = "rolled-back"  # the new image never became ready: running the previous again
    REFUSED = "refused"  # the new image failed verification: the pod left alone
    UNCHANGED = "unchanged"  # the tag still names the image the pod runs
    PENDING = "pending"  # --dry-run: an update is there, not applied
    FAILED = "failed"  # the registry could not be asked, or the restart failed: the pod left alone


class Readiness(enum.StrEnum):
    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Record:
    pins: Mapping[str, str] = field(default_factory=dict)  # image reference → image ID
    keep: tuple[str, ...] = ()  # image IDs kept for this pod (current and previous)
    previous: Mapping[str, str] = field(default_factory=dict)  # reference → the ID before

    def to_json(self) -> str:
        return json.dumps(
            {"pins": dict(self.pins), "previous": dict(self.previous), "keep": list(self.keep)},
            indent=1,
            sort_keys=True,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One pod's auto-update, as printed and logged."""

    pod: str
    image: str  # the reference followed
    result: Result
    old: str = ""  # image ID before
    new: str = ""  # image ID fetched (for refused: empty, it was never stored)
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "pod": self.pod,
            "image": self.image,
            "result": str(self.result),
            "old": self.old,
            "new": self.new,
            "reason": self.reason,
        }


def record_path(data_dir: str, pod: str) -> str:
    return os.path.join(data_dir, RECORD_DIR, f"{pod}.json")


def parse_record(text: str) -> Record:
    """A record as written by :func:`save_record`; anything else reads as no record (a pod then
    starts on what its references name in the store, as before auto-update touched it)."""
    try:
        raw = json.loads(text)
        pins = {str(k): str(v) for k, v in raw.get("pins", {}).items()}
        previous = {str(k): str(v) for k, v in raw.get("previous", {}).items()}
        keep = tuple(str(i) for i in raw.get("keep", []))
    except (ValueError, AttributeError, TypeError):
        return Record()
    return Record(pins, keep, previous)


def load_record(data_dir: str, pod: str) -> Record:
    try:
        with open(record_path(data_dir, pod)) as file:
            return parse_record(file.read())
    except FileNotFoundError:
        return Record()


def save_record(data_dir: str, pod: str, record: Record) -> None:
    path = record_path(data_dir, pod)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, record.to_json() + "\n")


def switched(record: Record, image: str, old: str, new: str) -> Record:
    """The record while ``image`` moves from ``old`` to ``new``: both kept until the new one is
    ready; what was kept for the reference before ``old`` is no longer."""
    keep = [i for i in record.keep if i != record.previous.get(image)]
    keep += [i for i in (old, new) if i and i not in keep]
    return Record({**record.pins, image: new}, tuple(keep), {**record.previous, image: old})


def rolled_back(before: Record, image: str, old: str) -> Record:
    """The record after the new image never became ready: the one before the switch, ``old``
    pinned (a pod auto-update never switched before ran whatever its reference named)."""
    keep = before.keep if old in before.keep else (*before.keep, old)
    return Record({**before.pins, image: old}, keep, before.previous)


def superseded(before: Record, after: Record) -> list[str]:
    """Image IDs the pod kept before and no longer does (removed, unless something else uses them)."""
    return [i for i in before.keep if i not in after.keep]


def pruned(record: Record, followed: tuple[str, ...]) -> Record:
    """The record of the references the pod file still follows (an image line edited or removed
    lets go of the images auto-update kept for the old one)."""
    pins = {k: v for k, v in record.pins.items() if k in followed}
    previous = {k: v for k, v in record.previous.items() if k in followed}
    keep = tuple(i for i in record.keep if i in pins.values() or i in previous.values())
    return Record(pins, keep, previous)


def pinned(request: PodRequest, record: Record) -> PodRequest:
    """The pod request ``pod exec`` starts: each app whose reference the record pins runs on the
    pinned image ID (not on whatever the name resolves to now)."""
    apps = tuple(
        replace(app, image=record.pins[app.image]) if app.image in record.pins else app
        for app in request.apps
    )
    return replace(request, apps=apps)


def followed(request: PodRequest) -> tuple[str, ...]:
    """The image references a pod follows, once each, in app order."""
    return tuple(dict.fromkeys(app.image for app in request.apps))


def readiness(
    active: str, apps: tuple[str, ...], new_invocation: bool, health: str | None, *, final: bool = False
) -> Readiness:
    """Whether a restarted pod@ unit is ready: a new run of it, active (nspawn said READY=1), every
    app's unit active in the pod (a notify app's once it said READY=1), and its health checks, if
    any, healthy. A check that has found nothing yet (``starting``) is waited for, not blocked on:
    at the deadline (``final``) it does not count against the pod; ``unhealthy`` always does."""
    if not new_invocation:
        return Readiness.WAITING  # the restart job has not started the new run yet
    if active in ("failed", "inactive") or "failed" in apps or health == "unhealthy":
        return Readiness.FAILED
    if active != "active" or not apps or any(state != "active" for state in apps):
        return Readiness.WAITING
    if health == "starting" and not final:
        return Readiness.WAITING
    return Readiness.READY


def worst_health(states: list[str]) -> str | None:
    """The pod's health from its checked apps' (stage0/pods/health.py): None when none has a check."""
    for state in ("unhealthy", "starting", "healthy"):
        if state in states:
            return state
    return None


def why_not_ready(
    active: str, sub: str, apps: tuple[str, ...], result: str, timeout: float, health: str | None = None
) -> str:
    """The one line the journal and the output give for a rollback."""
    if active in ("failed", "inactive"):
        return f"the pod ended ({active}, result {result or 'unknown'}) before it was ready"
    if "failed" in apps:
        return "an app failed before the pod was ready"
    if health == "unhealthy":
        return "its health check found it unhealthy"
    ready = sum(1 for state in apps if state == "active")
    shown = f", {ready}/{len(apps)} apps ready" if apps else ""
    return f"not ready within {timeout:g}s (pod {active}/{sub}{shown})"
