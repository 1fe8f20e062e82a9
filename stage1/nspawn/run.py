"""stage1's ``run``: the pod as a transient unit; in the foreground its apps' output, its exit code."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from types import FrameType

from stage1 import hostapps as fly
from stage1 import mds, network
from stage1.abi import Error, PodPaths, PodSpec, own_unit, unit_name
from stage1.attach import Relay, listen
from stage1.cni import forward_target, loopback_proxies, with_dns
from stage1.journal import Follower
from stage1.lifecycle import mark_started, ready
from stage1.nspawn.entering import enter_command
from stage1.nspawn.halt import halt, hearing
from stage1.nspawn.heir import spawn
from stage1.nspawn.service import pod_command, pod_service, spec_limits, stale_limit_drop_ins
from stage1.poddir import HOST_RESOLV, load, prepare_dirs, stop_unit
from stage1.stdio import Stdio
from stage1.systemd import Systemd, UnitStatus, WaitTimeout
from stage1.transient import TransientService
from stage1.units import assign_sockets

READY_TIMEOUT = 90.0
HALT_TIMEOUT = 30.0  # how long a pod may take to boot far enough to hear a halt request
SHUTDOWN_TIMEOUT = 120.0  # how long a halted pod may take to end before its unit is stopped


def exit_code(status: UnitStatus) -> int:
    if status.how == "exited":
        return status.exec_main_status
    return 128 + status.exec_main_status  # nspawn itself was killed


def run(pod_dir: str, *, detach: bool, debug: bool = False, stdio: Stdio = Stdio.JOURNAL) -> int:
    """Start the pod; in the foreground (``stdio`` other than JOURNAL) show its output and wait
    for its end (see stage1/stdio.py)."""
    spec, paths = load(pod_dir)
    if detach != (stdio is Stdio.JOURNAL):
        raise Error(f"a {'detached' if detach else 'foreground'} pod cannot have stdio {stdio}")
    if stdio.single_app and len(spec.apps) != 1:
        raise Error(
            f"--{stdio} gives the terminal to one app, and this pod has {len(spec.apps)}",
            hint="run the apps in pods of their own, or drop the option",
        )
    terminal = (0, 1, 2) if stdio is Stdio.TTY else None
    with open(paths.unit, "w") as file:
        file.write(unit_name(spec.machine) + "\n")
    spec = join(spec, paths, unit_name(spec.machine))
    started: list[bool] = []
    try:
        service = pod_service(spec, paths, debug=debug, stdio=stdio, terminal=terminal)
        prepare_dirs(spec, paths, stdio=stdio)
        return _start(spec, paths, service, detach=detach, stdio=stdio, started=started)
    except BaseException:
        if spec.networks is not None and not started:  # else the unit's ExecStopPost= does it
            network.down(spec.uuid)
        raise


def join(spec: PodSpec, paths: PodPaths, unit: str) -> PodSpec:
    """The pod's network up (stage1/network.py), and the spec with its DNS settled and its
    metadata service URL (stage1/mds.py)."""
    joined = network.up(spec, paths, unit) if spec.networks is not None else ()
    try:
        return mds.register(with_dns(spec, joined, os.path.exists(HOST_RESOLV)), paths, joined)
    except BaseException:
        network.down(spec.uuid)
        raise


def proxy(systemd: Systemd, spec: PodSpec, paths: PodPaths, unit: str) -> None:
    """The pod's loopback proxies (stage1/cni.py loopback_proxies), bound to its unit; one that
    cannot start costs a warning, not the pod."""
    target = forward_target(spec, network.attachments(paths)) if spec.ports else None
    for service in loopback_proxies(spec, target, unit) if target else ():
        try:
            systemd.start(service)
        except Error as error:
            print(f"nspod: warning: {service.description}: {error.message}", file=sys.stderr)


def _start(
    spec: PodSpec,
    paths: PodPaths,
    service: TransientService,
    *,
    detach: bool,
    stdio: Stdio,
    started: list[bool],
) -> int:
    asked: set[int] = set()  # SIGINT, SIGTERM, SIGHUP: an orderly shutdown; SIGWINCH: to nspawn

    def on_signal(signum: int, frame: FrameType | None) -> None:
        asked.add(signum)

    if not detach:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH):
            signal.signal(sig, on_signal)
    with Systemd() as systemd:
        mark_started(spec, paths, service.name)
        relay = heir = None
        if stdio.relayed:  # listening before the pod starts: its apps connect as they start
            fields = {"POD_UUID": spec.uuid, "POD_NAME": spec.machine}
            apps = [app.name for app in spec.apps]
            interactive = stdio is Stdio.INTERACTIVE
            listeners = listen(paths.io, len(apps), stdin=interactive)
            heir = spawn(listeners, paths.io, apps, fields, service.name)  # relays on if we are killed
            relay = Relay(paths.io, apps, fields, stdin=interactive, raw=interactive,
                          listeners=listeners, on_accept=heir.handed)  # fmt: skip
        systemd.start(service)
        started.append(True)
        proxy(systemd, spec, paths, service.name)
        if detach:
            status = systemd.wait(service.name, until="active", timeout=READY_TIMEOUT)
            if status.active_state == "active":
                ready(spec.uuid, spec.machine)
                return 0
            code = exit_code(status) or 1  # an app's own code, when one failed first
            print(
                f"nspod: pod {spec.uuid} ended before it was ready (exit code {code})\n"
                f"  hint: see 'journalctl -u {service.name}' and 'nspod logs {spec.uuid}'",
                file=sys.stderr,
            )
            return code
        # opened after the start, while the pod boots: read from the journal's head, it misses nothing;
        # on a terminal of its own the pod has no other output
        follower = None if stdio is Stdio.TTY else Follower("POD_UUID", spec.uuid, relayed=False)
        halted = False
        while True:
            try:
                status = systemd.wait(service.name, timeout=0.25)
                break
            except WaitTimeout:
                if signal.SIGWINCH in asked:  # nspawn reads the new size from the terminal
                    asked.discard(signal.SIGWINCH)
                    with contextlib.suppress(Error):
                        systemd.kill(service.name, signal.SIGWINCH, whom="main")
                if asked - {signal.SIGWINCH} and not halted:
                    halted = True
                    shut_down(systemd, service.name)
        if follower is not None:
            follower.finish(service.name)
        if relay is not None:
            relay.finish()
        if heir is not None:
            heir.done()
        systemd.unref(service.name)
    # interrupted: the shell's convention (128 + SIGINT), whatever the apps' codes were (see status)
    return 130 if halted else exit_code(status)


def shut_down(systemd: Systemd, name: str, *, wait: float = 0.0) -> None:
    """An orderly shutdown of the pod running as ``name``: its systemd stops the apps in order.
    Only if the pod cannot be asked (it is not booting) is its unit stopped instead. ``wait``:
    seconds to wait for the pod to end before the unit is stopped all the same."""
    status = systemd.status(name)
    if status.finished:
        return
    if status.main_pid and halt(status.main_pid, timeout=HALT_TIMEOUT):
        if not wait:
            return
        with contextlib.suppress(WaitTimeout):
            systemd.wait_gone(name, timeout=wait)
            return
    systemd.request_stop(name)


def inherited_sockets() -> list[tuple[str, str, str]]:
    """(name, listen kind, address) of the sockets systemd passed us (``$LISTEN_FDS``), in fd order."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    kinds = {
        socket.SOCK_STREAM: "ListenStream",
        socket.SOCK_DGRAM: "ListenDatagram",
        socket.SOCK_SEQPACKET: "ListenSequentialPacket",
    }
    found = []
    for index in range(count):
        sock = socket.socket(fileno=3 + index)
        try:
            kind, family, address = kinds[sock.type], sock.family, sock.getsockname()
        finally:
            sock.detach()  # the fd stays open for nspawn
        if family == socket.AF_INET6:
            text = f"[{address[0]}]:{address[1]}"
        elif family == socket.AF_INET:
            text = f"{address[0]}:{address[1]}"
        else:
            text = str(address)
        found.append((names[index] if index < len(names) else "", kind, text))
    return found


def exec_in_place(pod_dir: str, *, debug: bool = False) -> int:
    """``pod@NAME.service``'s main process becomes the pod's nspawn (``--keep-unit``): one unit for all.

    Sockets the unit inherited go on to nspawn (same PID), which hands them to the pod's systemd;
    the pod's socket units, written here with the names nspawn drops, adopt them by address.
    """
    spec, paths = load(pod_dir)
    unit = own_unit()
    spec = join(spec, paths, unit)  # pod@'s ExecStopPost= takes the network down (units/pod@.service)
    prepare_dirs(spec, paths, sockets=assign_sockets(spec, inherited_sockets()))
    with open(paths.unit, "w") as file:
        file.write(unit + "\n")
    with open(paths.invocation, "w") as file:  # what 'logs' follows (units/pod@.service has no UUID)
        file.write(os.environ.get("INVOCATION_ID", "") + "\n")
    mark_started(spec, paths, unit, at_unit=True)
    limits = spec_limits(spec)
    stale = [path for path in stale_limit_drop_ins(unit, limits) if os.path.exists(path)]
    if limits or spec.ports or stale:
        with Systemd() as systemd:
            if stale:  # a limit an earlier start set, gone from the pod file: from the unit too
                for path in stale:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                systemd.reload()  # systemd then applies the unit's limits to its cgroup again
            if limits:  # what pod_service gives a transient pod, onto pod@'s own unit
                systemd.set_properties(unit, limits)
            proxy(systemd, spec, paths, unit)
    argv = pod_command(spec, paths, debug=debug)
    sys.stdout.flush()
    sys.stderr.flush()
    _spawn_stop_watcher(unit, os.getpid())
    os.execv(argv[0], argv)


def _spawn_stop_watcher(unit: str, nspawn_pid: int) -> None:
    """A stop of pod@NAME while its pod boots reaches nspawn (systemd runs no ExecStop before the
    unit is active), and nspawn's one halt signal may come too early for the pod's systemd. A
    short-lived process (double-forked, so it is not nspawn's child) waits until the pod can hear
    a halt request, then sends one if the unit is stopping by then; after that nspawn's own gets
    through."""
    if os.fork():
        os.wait()
        return
    try:
        if not os.fork() and hearing(nspawn_pid):
            with Systemd() as systemd:
                if systemd.status(unit).active_state == "deactivating":
                    halt(nspawn_pid, timeout=1.0)
    finally:
        os._exit(0)


def halt_in_place(pod_dir: str) -> int:
    """``pod@NAME.service``'s ExecStop: ask the pod (``$MAINPID``'s) to shut down once it can hear
    it, and wait until it has, so that nspawn needs no signal from systemd."""
    pid = int(os.environ.get("MAINPID") or 0)
    if pid and halt(pid, timeout=HALT_TIMEOUT):
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)
    return 0


def stop(pod_dir: str, *, force: bool) -> int:
    def ending(systemd: Systemd, name: str) -> None:
        if force:
            systemd.kill(name, signal.SIGKILL)
            systemd.wait_gone(name, timeout=30)
        else:
            shut_down(systemd, name, wait=SHUTDOWN_TIMEOUT)
            systemd.wait_gone(name, timeout=SHUTDOWN_TIMEOUT)

    return stop_unit(PodPaths(pod_dir), ending)


def gc(pod_dir: str) -> int:
    """Host-side leftovers of an exited pod: its network, a failed unit. (Mounts live and die in
    nspawn's namespace.)"""
    paths = PodPaths(pod_dir)
    with contextlib.suppress(OSError, Error):  # a fly sandbox's apps: host units and root mounts
        if (spec := load(pod_dir)[0]).host_pid:
            fly.sweep(spec, paths)
    with contextlib.suppress(OSError, Error):  # its network, if its unit could not take it down
        network.down(load(pod_dir)[0].uuid)
    if not os.path.exists(paths.unit):
        return 0
    with open(paths.unit) as file:
        name = file.read().strip()
    with Systemd() as systemd:
        if systemd.exists(name) and systemd.status(name).active_state == "failed":
            systemd.reset_failed(name)
    return 0


def enter(pod_dir: str, app: str | None, command: list[str]) -> int:
    tty, term = os.isatty(0), os.environ.get("TERM", "dumb")
    argv, _ = enter_command(pod_dir, app, command, tty=tty, term=term)
    os.execv(argv[0], argv)
