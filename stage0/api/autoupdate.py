"""``nspod auto-update``, executed: for each running pod@NAME whose pod file says
``auto-update = "registry"``, fetch its images' tags (verified as ``nspod fetch`` verifies), restart
the unit on a changed image, wait for it to be ready and roll back when it is not. The decisions
are stage0/pods/autoupdate.py's; this module only fetches, restarts, watches and logs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator

from stage0.api.images import pull
from stage0.errors import Error, ErrorKind, FailedPreconditionError, kind_of
from stage0.events import emit
from stage0.host.executor import apps_active, restart_unit, unit_watch
from stage0.images.fetch.policy import QUIET, PullPolicy, Report
from stage0.options import GlobalOptions, InsecureOption
from stage0.pods import autoupdate as plan
from stage0.pods.autoupdate import Outcome, Readiness, Record, Result
from stage0.pods.podfile import PodFile, PodFileError, load, search_path

POLL = 0.2  # seconds between looks at a restarting unit
FAILED_RESULTS = (Result.ROLLED_BACK, Result.REFUSED, Result.FAILED)


def followed_pods(options: GlobalOptions, names: tuple[str, ...]) -> list[PodFile]:
    """The pod files that follow their tags: those named (each must), else every one found."""
    dirs = search_path(options.local_config, options.system_config)
    if names:
        pods = [load(name, dirs) for name in names]
        for pod in pods:
            if pod.auto_update != plan.POLICY_REGISTRY:
                raise PodFileError(
                    f'{pod.path}: no auto-update = "registry"', hint="add it to follow the image's tag"
                )
        return pods
    found: dict[str, PodFile] = {}
    for directory in dirs:
        for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            name = entry.removesuffix(".toml")
            if entry.endswith(".toml") and name not in found:
                with contextlib.suppress(Error):  # a broken pod file is pod exec's to report
                    found[name] = load(name, dirs)
    return [pod for pod in found.values() if pod.auto_update == plan.POLICY_REGISTRY]


@contextlib.contextmanager
def _exclusive(data_dir: str) -> Iterator[None]:
    """One auto-update at a time (the timer's and a user's)."""
    directory = os.path.join(data_dir, plan.RECORD_DIR)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def auto_update(
    options: GlobalOptions,
    names: tuple[str, ...] = (),
    *,
    dry_run: bool = False,
    timeout: float | None = None,
    report: Report = QUIET,
) -> list[Outcome]:
    if options.allows(InsecureOption.IMAGE):
        raise FailedPreconditionError(
            "auto-update starts only verified images: --insecure-options=image is refused here",
            hint="trust the images' keys ('nspod trust') and drop 'image' from --insecure-options",
        )
    pods = followed_pods(options, names)
    outcomes: list[Outcome] = []
    with _exclusive(options.dir):
        if not names and not dry_run:
            _forget_others(options.dir, {pod.name for pod in pods})
        for pod in pods:
            record = plan.load_record(options.dir, pod.name)
            if not dry_run and (kept := plan.pruned(record, plan.followed(pod.request))) != record:
                plan.save_record(options.dir, pod.name, kept)
            outcomes += _update_pod(options, pod, dry_run, timeout or pod.auto_update_timeout, report)
    for outcome in outcomes:
        if not dry_run:
            _log(outcome)
    return outcomes


def _forget_others(data_dir: str, followed: set[str]) -> None:
    """Records of pods no pod file makes follow a tag any more: their images are no longer kept."""
    directory = os.path.join(data_dir, plan.RECORD_DIR)
    for entry in os.listdir(directory):
        if entry.endswith(".json") and entry.removesuffix(".json") not in followed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))


def _update_pod(
    options: GlobalOptions, pod: PodFile, dry_run: bool, timeout: float, report: Report
) -> list[Outcome]:
    unit = f"pod@{pod.name}.service"
    outcomes = []
    for image in plan.followed(pod.request):
        if unit_watch(unit)[0] != "active":  # podman's rule too: only running pods move
            outcomes.append(Outcome(pod.name, image, Result.UNCHANGED, reason=f"{unit} is not running"))
            continue
        outcomes.append(_update_image(options, pod.name, unit, image, dry_run, timeout, report))
    return outcomes


def _current(options: GlobalOptions, unit: str, record: Record, image: str) -> str:
    """The image ID the pod runs for ``image``: the pinned one, else the one of those the reference
    names in the store that the unit's running pod uses (a dry run may have fetched a newer one)."""
    if image in record.pins:
        return record.pins[image]
    from stage0 import context
    from stage0.images.catalog import resolve
    from stage0.pods.dirs import Pods, PodState

    used = {
        i for p in Pods(options.dir).of_unit(unit) if p.state() is PodState.RUNNING for i in p.image_ids()
    }
    try:
        with context.open_store(options) as store:
            rows = resolve(store, image, options.config_dirs)
    except Error:
        return ""
    return next((row.id for row in rows if row.id in used), rows[0].id)


def _update_image(
    options: GlobalOptions, pod: str, unit: str, image: str, dry_run: bool, timeout: float, report: Report
) -> Outcome:
    before = plan.load_record(options.dir, pod)
    old = _current(options, unit, before, image)
    try:
        new = pull(options, image, policy=PullPolicy.UPDATE, report=report).id
    except Error as error:
        refused = kind_of(error) is ErrorKind.PERMISSION_DENIED  # a signature, or no trusted key
        result = Result.REFUSED if refused else Result.FAILED
        return Outcome(pod, image, result, old, reason=error.message)
    if new == old:
        return Outcome(pod, image, Result.UNCHANGED, old, new)
    if dry_run:
        return Outcome(pod, image, Result.PENDING, old, new)
    switched = plan.switched(before, image, old, new)
    plan.save_record(options.dir, pod, switched)  # kept, and pinned for pod exec, before the restart
    ready, why = _restart_ready(options, unit, pod, timeout)
    if ready:
        _remove_quietly(options, plan.superseded(before, switched))
        return Outcome(pod, image, Result.UPDATED, old, new)
    back = plan.rolled_back(before, image, old)
    plan.save_record(options.dir, pod, back)
    again, why_again = _restart_ready(options, unit, pod, timeout)
    _remove_quietly(options, plan.superseded(switched, back))
    reason = why if again else f"{why}; the previous image is not ready either: {why_again}"
    return Outcome(pod, image, Result.ROLLED_BACK, old, new, reason=reason)


def _restart_ready(options: GlobalOptions, unit: str, pod: str, timeout: float) -> tuple[bool, str]:
    """Restart ``unit`` and watch its new run: (ready, why not)."""
    before = unit_watch(unit)[4]
    try:
        restart_unit(unit)
    except Error as error:
        return False, error.message
    deadline = time.monotonic() + timeout
    while True:
        active, sub, _, result, invocation = unit_watch(unit)
        fresh = invocation not in ("", before)
        apps, health = _apps(options, unit, invocation) if fresh and active == "active" else ((), None)
        final = time.monotonic() > deadline
        seen = plan.readiness(active, apps, fresh, health, final=final)
        if seen is Readiness.READY:
            return True, ""
        if seen is Readiness.FAILED or final:
            return False, plan.why_not_ready(active, sub, apps, result, timeout, health)
        time.sleep(POLL)


def _apps(options: GlobalOptions, unit: str, invocation: str) -> tuple[tuple[str, ...], str | None]:
    """The states of the apps of the unit's run ``invocation`` (its pod's directory says which),
    and the pod's health (stage0/pods/health.py: what the apps' checks last found)."""
    from stage0.pods.dirs import Pods
    from stage0.pods.health import pod_health

    for pod in Pods(options.dir).of_unit(unit):
        try:
            with open(pod.paths.invocation) as file:
                if file.read().strip() != invocation:
                    continue
            with open(pod.paths.spec) as file:
                names = [str(app["name"]) for app in json.load(file)["apps"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        machine = pod.machine()
        health = plan.worst_health([h.status for h in pod_health(pod.paths.spec, pod.paths.status).values()])
        return (tuple(apps_active(machine, names)) if machine else ()), health
    return (), None


def _remove_quietly(options: GlobalOptions, ids: list[str]) -> None:
    """Images auto-update no longer keeps: removed now unless something else uses them (image gc
    removes them later then)."""
    from stage0.api.images import remove_image

    for image_id in ids:
        with contextlib.suppress(Error):
            remove_image(options, image_id)


def _log(outcome: Outcome) -> None:
    result = outcome.result
    priority = 4 if result in FAILED_RESULTS else 6
    # NSPOD_POD_NAME: the pod@ unit's name (events' NSPOD_POD is a pod's UUID, which a restart changes)
    emit("auto-update", priority=priority, pod_name=outcome.pod, image=outcome.image, result=str(result),
         image_id=outcome.new, previous_image_id=outcome.old, reason=outcome.reason or None)  # fmt: skip
