"""stage1's ``run`` entry point: start the pod as a transient unit and, in the foreground, show its
apps' output until it ends, then exit with its exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

from stage1.abi import Error, PodPaths, PodSpec
from stage1.journal import Follower
from stage1.nspawn import FLOCK, nspawn_argv, pod_service
from stage1.systemd import Systemd, UnitStatus, WaitTimeout
from stage1.tree import write_tree
from stage1.units import Socket, assign_sockets, tree

READY_TIMEOUT = 90.0
STOP_GRACE = 2.0


def load(pod_dir: str) -> tuple[PodSpec, PodPaths]:
    paths = PodPaths(pod_dir)
    try:
        with open(paths.spec) as file:
            return PodSpec.from_json(file.read()), paths
    except (OSError, ValueError) as error:
        raise Error(
            f"cannot read the pod spec in {pod_dir}: {error}", hint="is this a prepared pod?"
        ) from None


def prepare_dirs(spec: PodSpec, paths: PodPaths, sockets: list[Socket] | None = None) -> None:
    write_tree(paths.stage1, tree(spec, sockets))
    os.makedirs(paths.status, exist_ok=True)
    for volume in spec.volumes:
        if volume.kind == "empty" and not os.path.isdir(paths.volume(volume.name)):
            os.makedirs(paths.volume(volume.name))
            os.chown(paths.volume(volume.name), volume.uid, volume.gid)
            os.chmod(paths.volume(volume.name), volume.mode)
    for app in spec.apps:
        os.makedirs(paths.upper(app.name), exist_ok=True)
    open(paths.lock, "a").close()


def exit_code(status: UnitStatus) -> int:
    if status.how == "exited":
        return status.exec_main_status
    return 128 + status.exec_main_status  # nspawn itself was killed


def run(pod_dir: str, *, detach: bool, debug: bool = False) -> int:
    spec, paths = load(pod_dir)
    prepare_dirs(spec, paths)
    service = pod_service(spec, paths, debug=debug)
    with open(paths.unit, "w") as file:
        file.write(service.name + "\n")
    stop_asked: float | None = None  # when Ctrl-C came
    up = False

    def stop() -> None:
        subprocess.run(["systemctl", "stop", "--no-block", service.name], check=False)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_asked
        if stop_asked is None:  # Ctrl-C: an orderly shutdown of the pod
            stop_asked = time.monotonic()
            if up:
                stop()

    if not detach:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)
    with Systemd() as systemd:
        with open(paths.started, "w") as file:
            file.write(f"{time.time()}\n")
        systemd.start(service)
        if detach:
            status = systemd.wait(service.name, until="active", timeout=READY_TIMEOUT)
            return 0 if status.active_state == "active" else exit_code(status) or 1
        # opened after the start, while the pod boots: read from the journal's head, it misses nothing
        follower = Follower("POD_UUID", spec.uuid)
        # nspawn halts a pod by signalling its systemd, which loses a signal that comes before it
        # handles them: a Ctrl-C during the boot stops the pod once it is up (or STOP_GRACE later,
        # as an app that never gets ready must not keep it from stopping)
        while not up:
            try:
                systemd.wait(service.name, until="active", timeout=0.25)
                up = True
            except WaitTimeout:
                up = stop_asked is not None and time.monotonic() - stop_asked > STOP_GRACE
        if stop_asked is not None and not systemd.status(service.name).finished:
            stop()
        status = systemd.wait(service.name, timeout=float("inf"))
        follower.finish(service.name)
        code = exit_code(status)
        systemd.unref(service.name)
    return code


def own_unit() -> str:
    """The unit this process runs in (``pod@web.service``), from its cgroup."""
    with open("/proc/self/cgroup") as file:
        for line in file:
            path = line.rstrip("\n").split(":", 2)[2]
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".service"):
                return name
    raise Error("not running in a systemd service", hint="'nspod pod exec' is what pod@NAME.service runs")


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
    prepare_dirs(spec, paths, sockets=assign_sockets(spec, inherited_sockets()))
    with open(paths.unit, "w") as file:
        file.write(unit + "\n")
    with open(paths.started, "w") as file:
        file.write(f"{time.time()}\n")
    argv = [FLOCK, "--no-fork", paths.lock, *nspawn_argv(spec, paths, debug=debug)]
    sys.stdout.flush()
    os.execv(FLOCK, argv)


def stop(pod_dir: str, *, force: bool) -> int:
    paths = PodPaths(pod_dir)
    try:
        with open(paths.unit) as file:
            name = file.read().strip()
    except FileNotFoundError:
        return 0  # never started
    with Systemd() as systemd:
        if not systemd.exists(name):
            return 0
        if force:
            systemd.kill(name, signal.SIGKILL)
            systemd.wait_gone(name, timeout=30)
        else:
            systemd.stop(name, timeout=120)
        if systemd.exists(name) and systemd.status(name).active_state == "failed":
            systemd.reset_failed(name)
    return 0


def gc(pod_dir: str) -> int:
    """Host-side leftovers of an exited pod: a failed unit. (Mounts live and die in nspawn's namespace.)"""
    paths = PodPaths(pod_dir)
    if not os.path.exists(paths.unit):
        return 0
    with open(paths.unit) as file:
        name = file.read().strip()
    with Systemd() as systemd:
        if systemd.exists(name) and systemd.status(name).active_state == "failed":
            systemd.reset_failed(name)
    return 0


def enter(pod_dir: str, app: str | None, command: list[str]) -> int:
    spec, _ = load(pod_dir)
    if app is None:
        if len(spec.apps) != 1:
            raise Error(
                "the pod has several apps",
                hint=f"choose one with --app ({', '.join(a.name for a in spec.apps)})",
            )
        app = spec.apps[0].name
    spec.app(app)
    leader = subprocess.run(
        ["machinectl", "show", "--property=Leader", "--value", spec.machine],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not leader.isdigit():
        raise Error(f"pod {spec.uuid} is not running", hint="start it first; 'nspod status' tells its state")
    argv = [
        "nsenter",
        f"--target={leader}",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--",
        "/usr/sbin/chroot",
        f"/opt/stage2/{app}/rootfs",
        *(command or ["/bin/sh"]),
    ]
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "AC_APP_NAME": app,
        "TERM": os.environ.get("TERM", "dumb"),
    }
    os.execvpe(argv[0], argv, env)
