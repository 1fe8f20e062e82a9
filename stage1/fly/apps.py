"""The ``app`` verbs for the apps of a fly sandbox (a spec with ``host_pid``): each app a unit of
the host's systemd (stage1/fly/plan.py), its root an overlay mounted on the host for as long as
the app is in the sandbox. stage1/apps.py hands every verb here for such a pod.

The exit is recorded on the host by the unit's own ``ExecStopPost=`` (status/<app>.fly), the
start time by ``start`` (status/<app>.started, as for a pod's app), so ``states`` answers the same
after a restart of whoever asks, and after the unit is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time
from typing import Any

from stage1.abi import AppSpec, Error, PodPaths, PodSpec
from stage1.fly import plan
from stage1.systemd import Systemd, UnitNotFound, WaitTimeout, run_transient

STARTED = ".started"
EXIT = ".fly"  # status/<app>.fly: "exited 3", "killed TERM" (systemd's $EXIT_CODE $EXIT_STATUS)
LIVE = {"active": "running", "activating": "starting", "deactivating": "stopping"}
MNT_DETACH = 2
WRITER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "cri_log.py")
Volumes = tuple[tuple[str, str, bool], ...]
_libc = ctypes.CDLL(None, use_errno=True)


def root(paths: PodPaths, app: str) -> str:
    return os.path.join(paths.layers(app), "root")


def place(spec: PodSpec, paths: PodPaths, app: str, *, leader: int = 0) -> plan.Place:
    with open(paths.unit) as file:
        pod_unit = file.read().strip()
    return plan.Place(
        root=root(paths, app),
        etc=os.path.join(paths.stage1, "nspod/etc"),
        stdio=os.path.join(paths.layers(app), "stdio"),
        exit=os.path.join(paths.status, app + EXIT),
        pod_unit=pod_unit,
        leader=leader,
        host_network=spec.networks is None,
    )


def leader(spec: PodSpec) -> int:
    try:
        with Systemd() as host:
            return host.machine_leader(spec.machine)
    except Error:
        raise Error(
            f"pod {spec.uuid} is not running", hint="start it first; 'nspod status' tells its state"
        ) from None


def volumes(spec: PodSpec, paths: PodPaths, app: AppSpec) -> Volumes:
    """The app's mounts: (host source, target in its root, read-only); an empty volume's
    directory is the pod's (made by stage1/apps.py before the app's start)."""
    found = []
    for name, target, read_only in app.mounts:
        volume = next(v for v in spec.volumes if v.name == name)
        source = volume.source if volume.kind == "host" else paths.volume(name)
        found.append((source, target, read_only or volume.read_only))
    return tuple(found)


def enter_argv(
    spec: PodSpec, paths: PodPaths, app: AppSpec, cmd: list[str], hidden: tuple[str, ...], **how: Any
) -> list[str]:
    """``enter``'s command line for a fly app (``how``: tty, term, unit, as plan.exec_argv)."""
    here = place(spec, paths, app.name, leader=leader(spec))
    return plan.exec_argv(spec, app, here, volumes(spec, paths, app), hidden, cmd, **how)


def add(spec: PodSpec, paths: PodPaths, app: AppSpec) -> None:
    """The app's root mounted on the host (its image's layers under its writable one) and, for a
    CRI container, its log writer listening on its FIFOs."""
    layers = paths.layers(app.name)
    where, work = root(paths, app.name), os.path.join(layers, "work")
    for directory in (paths.upper(app.name), work, where):
        os.makedirs(directory, exist_ok=True)
    if not os.path.ismount(where):
        lower = ":".join((app.rootfs, *app.lower))  # top first
        options = f"lowerdir={lower},upperdir={paths.upper(app.name)},workdir={work}"
        if _libc.mount(b"overlay", where.encode(), b"overlay", 0, options.encode()) != 0:
            raise Error(f"cannot mount the app's root at {where}: {os.strerror(ctypes.get_errno())}")
    if app.log_path:
        os.makedirs(os.path.dirname(app.log_path), mode=0o755, exist_ok=True)
        os.makedirs(place(spec, paths, app.name).stdio, mode=0o700, exist_ok=True)
        run_transient(
            plan.writer_argv(spec, app, place(spec, paths, app.name), WRITER),
            f"the log writer of {app.name}",
        )


def start(spec: PodSpec, paths: PodPaths, app: AppSpec, volumes: Volumes, hidden: tuple[str, ...]) -> None:
    here = place(spec, paths, app.name, leader=leader(spec))
    for old in (here.exit, os.path.join(paths.status, app.name + STARTED)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    os.makedirs(paths.status, exist_ok=True)
    started = time.time()
    run_transient(plan.app_argv(spec, app, here, volumes, hidden), f"starting app {app.name}")
    with open(os.path.join(paths.status, app.name + STARTED), "w") as file:
        file.write(f"{started}\n")


def stop(spec: PodSpec, app: AppSpec, timeout: float | None) -> None:
    """Its stop signal, then SIGKILL after ``timeout`` seconds (None: its TimeoutStopSec=)."""
    unit = plan.unit_name(spec, app.name)
    with Systemd() as host:
        try:
            host.request_stop(unit)
            host.wait_gone(unit, timeout=app.stop_timeout + 30 if timeout is None else timeout)
        except UnitNotFound:
            return
        except WaitTimeout:
            with contextlib.suppress(UnitNotFound):
                host.kill(unit, signal.SIGKILL)
            host.wait_gone(unit, timeout=30)


def remove(spec: PodSpec, paths: PodPaths, app: AppSpec) -> None:
    """Stop the app and its writer, unmount its root, remove its layer and records."""
    stop(spec, app, 0)
    with Systemd() as host, contextlib.suppress(UnitNotFound):
        host.stop(plan.writer_name(spec, app.name), timeout=30)
    where = root(paths, app.name)
    while os.path.ismount(where):  # (a mount stacked by a killed add, too)
        if _libc.umount2(where.encode(), MNT_DETACH) != 0:
            raise Error(f"cannot unmount the app's root {where}: {os.strerror(ctypes.get_errno())}")
    shutil.rmtree(paths.layers(app.name), ignore_errors=True)
    for end in (EXIT, STARTED):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(paths.status, app.name + end))


def sweep(spec: PodSpec, paths: PodPaths) -> None:
    """Every app's host state (gc of the sandbox's pod): units, root mounts."""
    for app in spec.apps:
        remove(spec, paths, app)


def exit_code(text: str | None) -> tuple[int | None, str | None]:
    """A recorded exit as the CRI's code and the signal's name: "exited 3" is 3, "killed TERM"
    128 + 15 (a shell's ``$?``, containerd's exit code of a killed container)."""
    how, _, status = (text or "").strip().partition(" ")
    if how == "exited" and status.isdigit():
        return int(status), None
    if how in ("killed", "dumped"):
        with contextlib.suppress(KeyError):
            number = signal.Signals["SIG" + status]
            return 128 + number, number.name
        return 255, None
    return (None, None) if not how else (255, None)


def states(spec: PodSpec, paths: PodPaths, apps: tuple[AppSpec, ...]) -> list[dict[str, object]]:
    with Systemd() as host:
        return [_state(host, spec, paths, app) for app in apps]


def _state(host: Systemd, spec: PodSpec, paths: PodPaths, app: AppSpec) -> dict[str, object]:
    record = os.path.join(paths.status, app.name + EXIT)
    code, named = exit_code(_text(record))
    exited = os.path.getmtime(record) if code is not None else None
    started_text = _text(os.path.join(paths.status, app.name + STARTED))
    started = float(started_text) if started_text else None
    try:
        unit = host.status(plan.unit_name(spec, app.name))
        state, pid = LIVE.get(unit.active_state), unit.main_pid
    except UnitNotFound:
        state, pid = None, 0
    if state is None:
        state = "exited" if code is not None else "stopping" if started is not None else "created"
    return {
        "name": app.name,
        "state": state,
        "exit_code": code if state == "exited" else None,
        "signal": named if state == "exited" else None,
        "started": started,
        "exited": exited if state == "exited" else None,
        "pid": pid or None,
    }


def _text(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None
