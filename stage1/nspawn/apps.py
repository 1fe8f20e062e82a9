"""stage1's ``app`` entry point: the apps of a running app sandbox (rkt's ``app`` verbs).

stage0 plans an app with the planner every pod goes through and writes it into the pod's spec;
here it joins the running pod. Its root, the overlay of its image under a writable layer, is
mounted on the host and handed into the pod through machined (``BindMountMachine``, nspawn's
propagation directory), then detached on the host: the mount lives in the pod's namespace alone
and ends with it. Its units are the ones a pod started by ``run`` has (stage1/units.py
app_files), read by the pod's systemd on a reload; start, stop and status go to that systemd
over the pod's own bus.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable

from stage1 import hostapps as fly
from stage1.abi import APP_ROOT, AppSpec, Error, PodPaths, PodSpec, signal_name
from stage1.accounts import group, passwd
from stage1.atomic import read_text
from stage1.crilog import has_writer, log_dir, socket_unit_name, writer_unit_name
from stage1.health import CONFIG
from stage1.nspawn.propagation import share_into_app
from stage1.nspawn.run import shut_down
from stage1.nspawn.service import spec_limits
from stage1.poddir import host_hidden, load, make_volume, write_profiles
from stage1.stdio import Stdio
from stage1.systemd import Systemd, SystemdError, UnitNotFound, WaitTimeout
from stage1.tree import write_files
from stage1.units import TreeFile, app_files
from stage1.volumes import has_volumes_unit, shared_volumes, staged, volumes_unit_name

MNT_DETACH = 2
STARTED = ".started"  # status/<app>.started: when the app's last run started
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, kind: str, options: str) -> None:
    if _libc.mount(source.encode(), target.encode(), kind.encode(), 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise Error(f"cannot mount the app's root at {target}: {os.strerror(err)}")


def _detach(target: str) -> None:
    _libc.umount2(target.encode(), MNT_DETACH)


def _sandbox(pod_dir: str) -> tuple[PodSpec, PodPaths]:
    spec, paths = load(pod_dir)
    if not spec.sandbox:
        raise Error(
            f"pod {spec.uuid} is not an app sandbox",
            hint="apps come and go only in pods made by 'nspod app sandbox'",
        )
    return spec, paths


def _volume_source(spec: PodSpec, paths: PodPaths, name: str) -> tuple[str, bool]:
    volume = next(v for v in spec.volumes if v.name == name)
    if volume.kind == "host":
        return volume.source, volume.read_only
    make_volume(paths, volume)
    return paths.volume(name), volume.read_only


def _fly_volumes(spec: PodSpec, paths: PodPaths, app: AppSpec) -> fly.Volumes:
    """A fly app's mounts: (host source, target in its root, read-only)."""
    for volume, _, _ in app.mounts:
        _volume_source(spec, paths, volume)  # an empty volume made on first use
    return fly.volumes(spec, paths, app)


def add(pod_dir: str, name: str) -> int:
    """Mount the app's root (and its volumes) into the running pod and give its systemd the units."""
    spec, paths = _sandbox(pod_dir)
    if spec.host_pid:  # its root on the host, its writer listening (stage1/fly)
        fly.add(spec, paths, spec.app(name))
        write_profiles(spec, paths, host_hidden())
        return 0
    join(spec, paths, name)
    if has_writer(app := spec.app(name)):
        # a CRI container's log writer listens from now on (kubelet creates, then starts): its
        # Python's start was ~50 ms of every container's start→exit (bench/cri.py). Not started
        # here, the app's Requires= starts it, and says why it cannot, as before.
        with contextlib.suppress(Error), Systemd(spec.machine) as pod:
            pod.start_unit(writer_unit_name(app.name))  # its socket unit (the FIFOs) first
    return 0


def join(
    spec: PodSpec, paths: PodPaths, name: str, *, stdio: Stdio = Stdio.JOURNAL, fresh: bool = False
) -> None:
    """App ``name`` of ``spec`` into its running pod; ``stdio``: ATTACHED for a pooled run's
    relay; ``fresh``: no unit of that name was ever loaded in the pod, which then finds the new
    files when asked for them (a reload costs ~30 ms)."""
    app = spec.app(name)
    if spec.private_users is not None:
        raise Error(
            "apps cannot join a pod with its own user namespace yet",
            hint="make the sandbox without --private-users",
        )
    layers = paths.layers(app.name)
    staging, work = os.path.join(layers, "root"), os.path.join(layers, "work")
    for directory in (paths.upper(app.name), work, staging):
        os.makedirs(directory, exist_ok=True)
    root = APP_ROOT.format(app=app.name)
    lower = ":".join((app.rootfs, *app.lower))  # top first
    _mount(
        "overlay", staging, "overlay", f"lowerdir={lower},upperdir={paths.upper(app.name)},workdir={work}"
    )
    try:
        with Systemd() as host:
            host.bind_mount(spec.machine, staging, root)
            # into the pod's own tree: volumes-<app>.service binds them on inside the app's root,
            # which machined would resolve in the pod's (stage1/volumes.py)
            for index, (volume, _, read_only) in enumerate(app.mounts):
                # a slave of the host's mount, a shared one's too (its peer goes to the app alone,
                # at its start): the pod unmounts its copies when it removes the app or stops,
                # and an unmount of a peer's child would unmount the host's own mount there
                source, ro = _volume_source(spec, paths, volume)
                host.bind_mount(spec.machine, source, staged(app.name, index), read_only=read_only or ro)
            if app.log_path:  # a CRI container's log file: its directory, for its writer
                os.makedirs(os.path.dirname(app.log_path), mode=0o755, exist_ok=True)
                host.bind_mount(spec.machine, os.path.dirname(app.log_path), log_dir(app))
    finally:
        _detach(staging)  # the pod holds its own copy of the mount
    hidden = host_hidden()
    # the pod's systemd resolves the app's User=, Group= and SupplementaryGroups= in the pod's own
    # passwd and group files (216/GROUP, 217/USER when an ID is missing): they gain its IDs
    accounts = {"etc/passwd": TreeFile(passwd(spec)), "etc/group": TreeFile(group(spec))}
    write_files(paths.stage1, app_files(spec, app.name, stdio=stdio, hidden=hidden) | accounts)
    write_profiles(spec, paths, hidden)
    if not fresh:
        with Systemd(spec.machine) as pod:
            pod.reload()
    if limits := spec_limits(spec):  # the pod's bound follows its apps' limits, as at a pod's start
        with open(paths.unit) as file, Systemd() as host:
            host.set_properties(file.read().strip(), limits)


def run_app(spec: PodSpec, paths: PodPaths, name: str, stopping: threading.Event | None) -> int:
    """Start the joined app (a pooled run) and, with ``stopping``, wait for its end: its exit
    code, as ``run`` gives it; once ``stopping`` is set (the caller was interrupted) the pod is
    halted in order and the answer is 130. Without ``stopping``: 0 once it started."""
    unit = f"{name}.service"
    try:
        with Systemd(spec.machine) as pod:
            pod.ref(unit)  # held while we wait: the ended unit keeps its exit status for us
            status = pod.start_unit(unit)
            if stopping is None:
                return 0
            while not status.finished:
                if stopping.is_set():
                    with open(paths.unit) as file, Systemd() as host:
                        shut_down(host, file.read().strip())
                    return 130
                with contextlib.suppress(WaitTimeout):
                    status = pod.wait(unit, timeout=0.2)
    except SystemdError:
        # the app ended and its pod with it (the reaper's doing) before we read the unit: the
        # reaper recorded the exit code on its way
        return _recorded(paths, name)
    if status.how == "exited":
        return status.exec_main_status
    return 128 + status.exec_main_status if status.exec_main_code else 1


def _recorded(paths: PodPaths, name: str, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while (code := _read(os.path.join(paths.status, name))) is None:
        if time.monotonic() > deadline:
            raise Error(
                f"app {name} ended with its pod, and no exit code was recorded", hint="see 'nspod logs'"
            )
        time.sleep(0.01)
    return int(code)


def start(pod_dir: str, name: str) -> int:
    spec, paths = _sandbox(pod_dir)
    app = spec.app(name)
    if spec.host_pid:
        fly.start(spec, paths, app, _fly_volumes(spec, paths, app), host_hidden())
        return 0
    last = (os.path.join(paths.status, app.name + end) for end in ("", STARTED))
    for old in (*last, paths.app_signal(app.name), _reason(paths, app)):  # the last run's
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    with Systemd(spec.machine) as pod:
        status = pod.start_unit(f"{app.name}.service")
        # the pod's systemd forgets an ended unit (garbage collection): the start time is kept here,
        # the exit code and time by the reaper (its status file and when it wrote it)
        try:
            started = pod.times(f"{app.name}.service")[0] or time.time()
        except UnitNotFound:
            started = time.time()
    with open(os.path.join(paths.status, app.name + STARTED), "w") as file:
        file.write(f"{started}\n")
    if (shared := shared_volumes(spec, app)) and status.main_pid:
        with Systemd() as host:
            share_into_app(host.machine_leader(spec.machine), status.main_pid, shared)
    if has_volumes_unit(app) and _failed(spec, volumes_unit_name(app.name)):
        raise Error(
            f"app {app.name} did not start: its volumes cannot be mounted inside its root",
            hint="a mount point, or a link on its way, leads to the app's root itself, its /proc, /sys"
            f" or /dev (see 'journalctl -M {spec.machine} -u {volumes_unit_name(app.name)}')",
        )
    if status.active_state == "failed" and status.exec_main_code == 0:
        raise Error(f"app {app.name} did not start ({status.result})", hint=f"see 'nspod logs {spec.uuid}'")
    return 0


def _failed(spec: PodSpec, unit: str) -> bool:
    with Systemd(spec.machine) as pod:
        try:
            return pod.status(unit).active_state == "failed"
        except UnitNotFound:
            return False


def stop(pod_dir: str, name: str, timeout: float | None = None) -> int:
    """Stop the app's service: its KillSignal, then SIGKILL after ``timeout`` seconds (the CRI's
    StopContainer; 0 kills at once), or after its unit's TimeoutStopSec= when None."""
    spec, paths = _sandbox(pod_dir)
    app = spec.app(name)
    if spec.host_pid:
        fly.stop(spec, paths, app, timeout)
        return 0
    unit = f"{app.name}.service"
    with Systemd(spec.machine) as pod:
        if timeout is None:
            pod.stop(unit, timeout=app.stop_timeout + 30)
        else:
            pod.request_stop(unit)
            try:
                pod.wait_gone(unit, timeout=timeout)
            except WaitTimeout:
                with contextlib.suppress(UnitNotFound):
                    pod.kill(unit, signal.SIGKILL)
                pod.wait_gone(unit, timeout=30)
        # stopped once its exit is recorded: its reaper (which first has a CRI container's writer
        # drain its FIFOs) runs as the app ends, and its state until then still reads "running"
        with contextlib.suppress(WaitTimeout):
            pod.wait_gone(f"reaper-{app.name}.service", timeout=30)
    return 0


def remove(pod_dir: str, name: str) -> int:
    """Stop the app, take its root out of the pod and its units out of the pod's systemd. stage0
    then drops it from the pod's spec and manifest."""
    spec, paths = _sandbox(pod_dir)
    app = spec.app(name)
    if spec.host_pid:
        fly.remove(spec, paths, app)
        return 0
    root = APP_ROOT.format(app=app.name)
    with Systemd(spec.machine) as pod:
        # after the app: the writer drains its FIFOs, which the socket holds until then
        writer = (writer_unit_name(app.name), socket_unit_name(app.name)) if has_writer(app) else ()
        own: tuple[str, ...] = (
            f"{app.name}.service",
            f"reaper-{app.name}.service",
            f"ready-{app.name}.service",
        )
        own += (f"health-{app.name}.timer", f"health-{app.name}.service")  # its check's, if any
        for unit in (*own, *writer):
            with contextlib.suppress(UnitNotFound):
                pod.stop(unit, timeout=app.stop_timeout + 30)
        # the volumes inside the app's root go with their unit (whose stop detaches them); the pod's
        # systemd knows the other mounts as units: stopping them unmounts them
        with contextlib.suppress(UnitNotFound):
            pod.stop(volumes_unit_name(app.name))
        logs = [log_dir(app)] if app.log_path else []
        for where in [*(staged(app.name, i) for i in range(len(app.mounts))), *logs, root]:
            with contextlib.suppress(UnitNotFound):
                pod.stop(_mount_unit(where))
        units = os.path.join(paths.stage1, "etc/systemd/system")
        for unit in (*own, *writer, volumes_unit_name(app.name), f"{app.name}.service.d/health.conf"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(units, unit))
        pod.reload()
        for unit in (f"{app.name}.service", f"reaper-{app.name}.service"):
            with contextlib.suppress(Error):
                pod.reset_failed(unit)
    _detach(os.path.join(paths.layers(app.name), "root"))  # a killed add left it (#23 item 18)
    shutil.rmtree(paths.layers(app.name), ignore_errors=True)
    health = (os.path.join(paths.status, f"{app.name}.health"), paths.stage1 + CONFIG.format(app=app.name))
    for recorded in (
        os.path.join(paths.status, app.name),
        paths.app_signal(app.name),
        _reason(paths, app),
        *health,
    ):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(recorded)
    return 0


def _mount_unit(where: str) -> str:
    from stage1.escape import unit_path

    return f"{unit_path(where)}.mount"


def states(pod_dir: str, name: str | None, *, recorded: bool = False) -> list[dict[str, object]]:
    """The apps' states (every app, or the one named), from the pod's systemd and the exit codes
    the reapers recorded: what ``nspod app list`` and ``app status`` show. ``recorded``: from the
    records alone (created, running or exited; no PID), without a round trip to the pod's systemd:
    the CRI's, whose states are those three."""
    spec, paths = _sandbox(pod_dir)
    apps: tuple[AppSpec, ...] = (spec.app(name),) if name else spec.apps
    if spec.host_pid:
        return fly.states(spec, paths, apps)
    with contextlib.ExitStack() as stack:
        bus: list[Systemd] = []

        def pod() -> Systemd:  # connected only when an app's end is not recorded yet
            if not bus:
                bus.append(stack.enter_context(Systemd(spec.machine)))
            return bus[0]

        return [_state(None if recorded else pod, paths, app) for app in apps]


def status(pod_dir: str, name: str | None) -> int:
    """The ``status`` action: the states as JSON lines, for a stage0 that runs stage1 as a program."""
    for state in states(pod_dir, name):
        print(json.dumps(state))
    return 0


def _state(pod: Callable[[], Systemd] | None, paths: PodPaths, app: AppSpec) -> dict[str, object]:
    code_file = os.path.join(paths.status, app.name)
    code, exited = _read(code_file), None
    if code is not None:
        exited = os.path.getmtime(code_file)
    started = _read(os.path.join(paths.status, app.name + STARTED))
    state: str | None = None
    pid = 0
    try:
        # a recorded end is the last run's (a start removes it first): no need to ask the pod
        if code is None and pod is not None:
            unit = pod().status(f"{app.name}.service")
            state, pid = LIVE.get(unit.active_state), unit.main_pid
        elif code is None and started is not None:
            state = "running"  # or starting, or stopping: its end is not recorded yet
    except UnitNotFound:  # never started, or ended and forgotten
        pass
    if state is None:
        state = "exited" if code is not None else "stopping" if started is not None else "created"
    return {
        "name": app.name,
        "state": state,
        "exit_code": int(code) if state == "exited" and code is not None else None,
        "signal": signal_name(read_text(paths.app_signal(app.name))) if state == "exited" else None,
        # what ended it beyond its code: "oom-kill" (systemd's Result, the reaper's record) or None
        "reason": (read_text(_reason(paths, app)) or "").strip() or None if state == "exited" else None,
        "started": started,
        "exited": exited if state == "exited" else None,
        "pid": pid or None,
    }


LIVE = {"active": "running", "activating": "starting", "deactivating": "stopping"}


def _reason(paths: PodPaths, app: AppSpec) -> str:
    return os.path.join(paths.status, app.name + ".reason")  # status/<app>.reason, by its reaper


def _read(path: str) -> float | None:
    try:
        with open(path) as file:
            return float(file.read().strip())
    except (OSError, ValueError):
        return None
