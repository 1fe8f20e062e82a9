"""The ``app`` verbs for the apps of a fly sandbox (a spec with ``host_pid``): each app a unit of
the host's systemd (stage1/hostplan.py), its root an overlay mounted on the host for as long as
the app is in the sandbox. stage1/nspawn/apps.py hands every verb here for such a pod.

The unit outlives its main process (``RemainAfterExit=``; a failed one stays anyway): whoever
first sees it ended (``stop``, ``states``) records its exit in status/<app>.fly, stamped with its
time, after its writer drained its output; ``start`` records the start (status/<app>.started, as
for a pod's app). So ``states`` answers the same after a restart of whoever asks, and after the
unit is gone (``remove``, or the pod's stop, which stops it: BindsTo=).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time
from typing import Any

from stage1 import hostplan as plan
from stage1.abi import AppSpec, Error, PodPaths, PodSpec
from stage1.atomic import read_text
from stage1.systemd import Systemd, SystemdError, UnitNotFound, run_transient

STARTED = ".started"
EXIT = ".fly"  # status/<app>.fly: "exited 3", "killed 15" (as systemd says how its main process ended)
LIVE = {"active": "running", "activating": "starting", "deactivating": "stopping"}
MNT_DETACH = 2
WRITER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts", "cri_log.py")
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
    directory is the pod's (made by stage1/nspawn/apps.py before the app's start)."""
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
    """The app's root mounted on the host (its image's layers under its writable one) and its
    output writer listening on its FIFOs."""
    mount_root(paths, app)
    if app.log_path:
        os.makedirs(os.path.dirname(app.log_path), mode=0o755, exist_ok=True)
    # its stdout and stderr are FIFOs to its writer, with a CRI log file or not
    here = place(spec, paths, app.name)
    os.makedirs(here.stdio, mode=0o700, exist_ok=True)
    run_transient(plan.writer_argv(spec, app, here, WRITER), f"the output writer of {app.name}")


def mount_root(paths: PodPaths, app: AppSpec) -> None:
    """The app's root: its image's layers under its writable one (as in an nspawn pod)."""
    layers = paths.layers(app.name)
    where, work = root(paths, app.name), os.path.join(layers, "work")
    for directory in (paths.upper(app.name), work, where):
        os.makedirs(directory, exist_ok=True)
    if not os.path.ismount(where):
        lower = ":".join((app.rootfs, *app.lower))  # top first
        options = f"lowerdir={lower},upperdir={paths.upper(app.name)},workdir={work}"
        if _libc.mount(b"overlay", where.encode(), b"overlay", 0, options.encode()) != 0:
            raise Error(f"cannot mount the app's root at {where}: {os.strerror(ctypes.get_errno())}")


def unmount_root(paths: PodPaths, app: str) -> None:
    where = root(paths, app)
    while os.path.ismount(where):  # (a mount stacked by a killed add, too)
        if _libc.umount2(where.encode(), MNT_DETACH) != 0:
            raise Error(f"cannot unmount the app's root {where}: {os.strerror(ctypes.get_errno())}")


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


def stop(spec: PodSpec, paths: PodPaths, app: AppSpec, timeout: float | None) -> None:
    """Its stop signal to its main process, SIGKILL after ``timeout`` seconds (None: its stop
    timeout; 0: SIGKILL at once, as containerd's), then SIGKILL to whatever else is left in its
    unit; its exit is recorded. The unit stays (stopped by ``remove``): its exit status with it."""
    unit = plan.unit_name(spec, app.name)
    with Systemd() as host:
        try:
            if host.status(unit).main_pid:
                first = signal.SIGKILL if timeout is not None and timeout <= 0 else _signal(app)
                _kill(host, unit, first, "main")
                wait = app.stop_timeout if timeout is None else max(timeout, 0)
                if not _main_ended(host, unit, wait):
                    _kill(host, unit, signal.SIGKILL, "main")
                    _main_ended(host, unit, 30)
            exit_file = os.path.join(paths.status, app.name + EXIT)
            _record(host, unit, exit_file, plan.writer_name(spec, app.name))
        except UnitNotFound:
            return


def _signal(app: AppSpec) -> signal.Signals:
    name = (app.stop_signal or "SIGTERM").upper()
    try:
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except KeyError:
        return signal.SIGTERM


def _kill(host: Systemd, unit: str, number: int, whom: str) -> None:
    with contextlib.suppress(UnitNotFound, SystemdError):  # (no process of that kind left)
        host.kill(unit, number, whom=whom)


def _main_ended(host: Systemd, unit: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while host.status(unit).main_pid:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _record(host: Systemd, unit: str, path: str, writer: str) -> None:
    """The ended main process's exit ("exited 3", "killed 15") into ``path``, stamped with its
    time, once its writer has drained what it wrote (stopped: it reads the FIFOs to their end), so
    the log file is whole once the app is "exited", as a pod's reaper makes it."""
    status = host.status(unit)
    if status.main_pid or not status.exec_main_code or os.path.exists(path):
        return
    # the container ended with its main process (RemainAfterExit= would keep what it left running)
    _kill(host, unit, signal.SIGKILL, "all")
    with contextlib.suppress(UnitNotFound, SystemdError):
        host.stop(writer + ".service", timeout=10)
    ended = host.times(unit)[1] or time.time()
    with open(path + ".tmp", "w") as file:
        file.write(f"{status.how} {status.exec_main_status}\n")
    os.utime(path + ".tmp", (ended, ended))
    os.replace(path + ".tmp", path)


def remove(spec: PodSpec, paths: PodPaths, app: AppSpec) -> None:
    """Stop the app and its writer, unmount its root, remove its layer and records."""
    stop(spec, paths, app, 0)
    with Systemd() as host:
        writer = plan.writer_name(spec, app.name)
        for unit in (plan.unit_name(spec, app.name), f"{writer}.service", f"{writer}.socket"):
            with contextlib.suppress(UnitNotFound):
                host.stop(unit, timeout=30)
            with contextlib.suppress(Error):  # a failed unit stays until then
                host.reset_failed(unit)
    unmount_root(paths, app.name)
    shutil.rmtree(paths.layers(app.name), ignore_errors=True)
    for end in (EXIT, STARTED):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(paths.status, app.name + end))


def sweep(spec: PodSpec, paths: PodPaths) -> None:
    """Every app's host state (gc of the sandbox's pod): units, root mounts."""
    for app in spec.apps:
        remove(spec, paths, app)


def exit_code(text: str | None) -> tuple[int | None, str | None]:
    """A recorded exit as the CRI's code and the signal's name: "exited 3" is 3, "killed 15"
    128 + 15 (a shell's ``$?``, containerd's exit code of a killed container)."""
    how, _, status = (text or "").strip().partition(" ")
    if how == "exited" and status.isdigit():
        return int(status), None
    if how in ("killed", "dumped"):
        with contextlib.suppress(KeyError, ValueError):
            number = signal.Signals(int(status)) if status.isdigit() else signal.Signals["SIG" + status]
            return 128 + number, number.name
        return 255, None
    return (None, None) if not how else (255, None)


def states(spec: PodSpec, paths: PodPaths, apps: tuple[AppSpec, ...]) -> list[dict[str, object]]:
    with Systemd() as host:
        return [_state(host, spec, paths, app) for app in apps]


def _state(host: Systemd, spec: PodSpec, paths: PodPaths, app: AppSpec) -> dict[str, object]:
    unit_name = plan.unit_name(spec, app.name)
    record = os.path.join(paths.status, app.name + EXIT)
    started_text = read_text(os.path.join(paths.status, app.name + STARTED))
    started = float(started_text) if started_text else None
    try:
        unit = host.status(unit_name)
        if not unit.main_pid and unit.exec_main_code:  # ended: recorded, for after the unit
            _record(host, unit_name, record, plan.writer_name(spec, app.name))
        state = LIVE.get(unit.active_state) if unit.main_pid else None
        pid = unit.main_pid
    except UnitNotFound:
        state, pid = None, 0
    code, named = exit_code(read_text(record))
    if state is None and code is None and started is not None:
        code = 255  # ended with its unit gone before anyone saw its status (its pod stopped)
    exited = os.path.getmtime(record) if os.path.exists(record) else None
    if state is None:
        state = "exited" if code is not None else "created"
    return {
        "name": app.name,
        "state": state,
        "exit_code": code if state == "exited" else None,
        "signal": named if state == "exited" else None,
        "started": started,
        "exited": (exited or time.time()) if state == "exited" else None,
        "pid": pid or None,
    }
