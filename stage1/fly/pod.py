"""stage1's entry points for a fly pod (``--stage1=fly``, issue #25): ``python -m stage1.fly.pod
VERB POD_DIR …`` as stage1/__main__.py takes them (stage1/ABI.md); stage0 calls :func:`main`.

The pod's unit (``nspod-NAME.service``, or pod@NAME.service itself) runs :func:`supervise`: it
holds the pod's lock (the pod reads "running" while it does), mounts each app's root, starts
each app as a host unit (stage1/fly/podplan.py), records each app's exit as an nspawn pod's
reaper does (status/<app>); the first app to fail ends the pod (the others stopped) with its
code. A stop of the pod's unit
stops the apps (BindsTo=); ``gc`` takes away whatever a killed supervisor left.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import os
import shutil
import signal
import socket
import sys
import time
from types import FrameType

from stage1 import hostapps as fly
from stage1 import hostplan as plan
from stage1 import mds
from stage1.abi import Error, ExitCode, PodPaths, PodSpec, own_unit
from stage1.app_unit import pod_etc
from stage1.cni import with_dns
from stage1.enter import check_command, entered_argv, split_command
from stage1.fly import podplan
from stage1.journal import Follower, stream_open
from stage1.poddir import HOST_RESOLV, host_hidden, load, prepare_dirs, stop_unit
from stage1.systemd import Systemd, SystemdError, UnitNotFound, run_transient

POLL = 0.05
STOP_TIMEOUT = 120.0
YEAR = 365 * 24 * 3600.0  # a foreground run waits as long as its pod runs


def _notify(message: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(message.encode(), address)


def _host_spec(spec: PodSpec) -> PodSpec:
    """The spec as a fly pod runs it: the host's network (none joined), the host's DNS."""
    return with_dns(dataclasses.replace(spec, networks=None), (), os.path.exists(HOST_RESOLV))


def _record(paths: PodPaths, app: str, how: str, status: int) -> int:
    code, number = podplan.exit_of(how, status)
    if number is not None:
        with open(paths.app_signal(app), "w") as file:
            file.write(f"{number}\n")
    with open(os.path.join(paths.status, app + ".tmp"), "w") as file:
        file.write(f"{code}\n")
    os.replace(os.path.join(paths.status, app + ".tmp"), os.path.join(paths.status, app))
    return code


def _etc_targets(root: str, names: tuple[str, ...], etc: str) -> None:
    """The pod's /etc files (the host's where the spec writes none: an nspawn pod binds those at
    its boot), and the files they are bound over, made in the app's writable layer when its image
    has none (systemd binds onto what exists)."""
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    os.makedirs(etc, exist_ok=True)
    for name in names:
        if not os.path.exists(os.path.join(etc, name)):
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(os.path.join("/etc", name), os.path.join(etc, name))
            open(os.path.join(etc, name), "a").close()
        target = os.path.join(root, "etc", name)
        if not os.path.lexists(target):
            open(target, "a").close()


def supervise(pod_dir: str) -> int:
    """The pod's main process (see the module's docstring)."""
    spec, paths = load(pod_dir)
    lock = os.open(paths.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held until we end: the pod runs
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, on_signal)
    unit = own_unit()
    with open(paths.unit, "w") as file:
        file.write(unit + "\n")
    with open(paths.started, "w") as file:
        file.write(f"{time.time()}\n")
    spec = _host_spec(spec)
    prepare_dirs(spec, paths)  # the pod's /etc files (resolv.conf, hosts) among them
    spec = mds.register(spec, paths, ())  # the host's network: the service at the host's loopback
    hidden = host_hidden()
    ended: list[int] = []
    # ready before the apps start: their units are ordered After= ours (they stop first), so a
    # start of theirs would wait for ours to finish starting
    _notify("READY=1")
    with Systemd() as host:
        running = []
        for app in spec.apps:
            if stopping:
                break
            fly.mount_root(paths, app)
            _etc_targets(fly.root(paths, app.name), pod_etc(spec), fly.place(spec, paths, app.name).etc)
            place = dataclasses.replace(fly.place(spec, paths, app.name), pod_unit=unit)
            argv = podplan.app_argv(spec, app, place, fly.volumes(spec, paths, app), hidden)
            started = time.time()
            try:
                run_transient(argv, f"starting app {app.name}")
            except SystemdError:
                if not _ran(host, plan.unit_name(spec, app.name)):
                    raise
            # held while we run: an app's unit stopped (the pod's end) is kept, its exit with it,
            # rather than unloaded before we read how it ended
            with contextlib.suppress(Error):
                host.ref(plan.unit_name(spec, app.name))
            with open(os.path.join(paths.status, app.name + fly.STARTED), "w") as file:
                file.write(f"{started}\n")
            running.append(app.name)
        asked = False
        while running:
            # a stop asked for, or the first app to fail, ends the pod (as an nspawn pod's reaper
            # ends it): the others are stopped, the pod's code the failing app's
            if (stopping or podplan.pod_code(ended)) and not asked:
                asked = True
                if stopping:  # (not for a failure: our unit would read "deactivating", a stop)
                    _notify("STOPPING=1")
                for name in running:
                    with contextlib.suppress(UnitNotFound, SystemdError):
                        host.request_stop(plan.unit_name(spec, name))
            before = len(ended)
            for name in list(running):
                try:
                    status = host.status(plan.unit_name(spec, name))
                except UnitNotFound:  # stopped and gone before we saw it end
                    running.remove(name)
                    ended.append(_record(paths, name, "killed", signal.SIGKILL))
                    continue
                if not status.main_pid and (
                    status.exec_main_code or status.active_state in ("failed", "inactive")
                ):
                    # read again: one read is property by property, and may hold an exit status
                    # read before the exit its exit code and MainPID were read after
                    with contextlib.suppress(UnitNotFound):
                        status = host.status(plan.unit_name(spec, name))
                    running.remove(name)
                    ended.append(_record(paths, name, status.how, status.exec_main_status))
                    if spec.app(name).post_stop:  # its post-stop handler runs as its unit stops
                        with contextlib.suppress(UnitNotFound, SystemdError):
                            host.request_stop(plan.unit_name(spec, name))
            # a stop of our unit stops the apps first (they are ordered After= it): theirs is
            # then a stop asked for, before our SIGTERM says so
            if len(ended) > before and not stopping and host.status(unit).active_state == "deactivating":
                stopping.append(0)
            host.settle(POLL)  # woken by the app units' changes
        _clean(host, spec, paths)
    return 0 if stopping else podplan.pod_code(ended)  # a stop asked for is no failure


def _ran(host: Systemd, unit: str) -> bool:
    """Whether the app's process ran: one that ends as it starts (``exit 3`` on a busy host) can
    fail its unit before systemd-run sees the start job done; it is an app that ended, its code
    the pod's as any app's, not a start that failed."""
    try:
        return host.status(unit).exec_main_code != 0
    except UnitNotFound:
        return False


def _clean(host: Systemd, spec: PodSpec, paths: PodPaths) -> None:
    """The apps' units and root mounts gone (the supervisor's end, and gc)."""
    for app in spec.apps:
        name = plan.unit_name(spec, app.name)
        with contextlib.suppress(UnitNotFound, SystemdError):
            host.stop(name, timeout=30)
        with contextlib.suppress(Error):  # a failed unit stays until then
            host.reset_failed(name)
        fly.unmount_root(paths, app.name)
    mds.unregister(spec, paths)


def run(pod_dir: str, *, detach: bool) -> int:
    """``nspod run``: the pod's unit started; in the foreground its output and its exit code."""
    spec, paths = load(pod_dir)
    service = podplan.pod_service(spec, pod_dir, sys.executable)
    with open(paths.unit, "w") as file:
        file.write(service.name + "\n")
    follower = None if detach else Follower("POD_UUID", spec.uuid, relayed=False)
    with Systemd() as host:
        host.start(service)
        try:
            status = host.wait(service.name, until="active" if detach else "finished", timeout=YEAR)
        except KeyboardInterrupt:  # Ctrl-C of a foreground run: the pod stops, as an nspawn pod does
            host.stop(service.name, timeout=STOP_TIMEOUT)
            host.unref(service.name)
            return 130
        if follower is not None:  # every app's stream closed: its lines are in the journal
            deadline = time.monotonic() + 5.0
            names = [plan.unit_name(spec, app.name) for app in spec.apps]
            while time.monotonic() < deadline and any(stream_open(name) for name in names):
                time.sleep(0.005)
            follower.finish(service.name)
        host.unref(service.name)
        if detach and status.active_state == "active":
            return 0
        code = status.exec_main_status if status.how == "exited" else 128 + status.exec_main_status
        if status.active_state == "failed":
            with contextlib.suppress(Error):
                host.reset_failed(service.name)
        return code


def stop(pod_dir: str, *, force: bool) -> int:
    def ending(host: Systemd, name: str) -> None:
        if force:
            host.kill(name, signal.SIGKILL)
        host.stop(name, timeout=STOP_TIMEOUT)

    return stop_unit(PodPaths(pod_dir), ending)


def gc(pod_dir: str) -> int:
    """What a killed supervisor left on the host: app units, root mounts, a failed pod unit."""
    spec, paths = load(pod_dir)
    with Systemd() as host:
        _clean(host, spec, paths)
        with contextlib.suppress(FileNotFoundError, Error), open(paths.unit) as file:
            name = file.read().strip()
            if host.exists(name) and host.status(name).active_state == "failed":
                host.reset_failed(name)
    return 0


def enter(pod_dir: str, app_name: str | None, command: list[str]) -> int:
    """A command in a running app's root and profile, as a host unit (systemd-run waits on it)."""
    spec, paths = load(pod_dir)
    spec = mds.registered_url(_host_spec(spec), paths)
    app = spec.app(spec.chosen(app_name).name)
    try:
        with open(paths.unit) as file:
            unit = file.read().strip()
        with Systemd() as host:
            running = host.status(unit).active_state == "active"
    except (FileNotFoundError, Error):
        running = False
    if not running:
        raise Error(f"pod {spec.uuid} is not running", hint="start it first; 'nspod status' tells its state")
    command = command or ["/bin/sh"]
    check_command(paths, app, command[0])
    place = dataclasses.replace(fly.place(spec, paths, app.name), pod_unit=unit)
    own = podplan.settings(spec, app, place, fly.volumes(spec, paths, app), host_hidden())
    term = os.environ.get("TERM", "dumb")
    argv = entered_argv(app.name, own, command, tty=os.isatty(0), term=term, unit="", machine="")
    sys.stdout.flush()
    os.execv(argv[0], argv)


def logs(pod_dir: str, *, follow: bool, app: str | None) -> int:
    spec, _ = load(pod_dir)
    follower = Follower("POD_UUID", spec.uuid)
    if app:
        raise Error("logs --app is not built for fly pods yet", hint="'nspod logs POD' shows every app's")
    if follow:
        follower.wait()
    else:
        follower.finish(None)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nspod-stage1-fly", description="nspod's fly stage1")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("verb")
    parser.add_argument("pod_dir")
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--stdio")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--app")
    # nspod exec's (not built for fly pods yet: refused below)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--workdir")
    parser.add_argument("--tty", default="auto")
    options, command = split_command(sys.argv[1:] if argv is None else argv)
    args, more = parser.parse_known_args(options)
    try:
        match args.verb:
            case "run":
                return run(args.pod_dir, detach=args.detach)
            case "exec" | "supervise":  # pod@NAME's main process, or the unit run starts
                return supervise(args.pod_dir)
            case "stop":
                return stop(args.pod_dir, force=args.force)
            case "halt":  # pod@'s ExecStop: systemd's SIGTERM then reaches the supervisor
                return 0
            case "gc":
                return gc(args.pod_dir)
            case "logs":
                return logs(args.pod_dir, follow=args.follow, app=args.app)
            case "enter" if not (more or args.env or args.user or args.workdir or args.tty != "auto"):
                return enter(args.pod_dir, args.app, command)
            case "sweep":
                from stage1 import orphans

                orphans.sweep(args.pod_dir)
                return 0
            case _:
                raise Error(
                    f"{args.verb} is not built for fly pods yet",
                    hint="fly runs apps as host units: see them with systemctl and journalctl",
                )
    except Error as error:
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return int(ExitCode.FAILURE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # out without the interpreter's teardown (as nspod's own entry): nothing is left open by now
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
