"""stage1's ``run`` entry point: start the pod as a transient unit and, in the foreground, show its
apps' output until it ends, then exit with its exit code."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

from stage1.abi import Error, PodPaths, PodSpec
from stage1.nspawn import pod_service
from stage1.systemd import Systemd, UnitStatus
from stage1.tree import write_tree
from stage1.units import tree

READY_TIMEOUT = 90.0


def load(pod_dir: str) -> tuple[PodSpec, PodPaths]:
    paths = PodPaths(pod_dir)
    try:
        with open(paths.spec) as file:
            return PodSpec.from_json(file.read()), paths
    except (OSError, ValueError) as error:
        raise Error(
            f"cannot read the pod spec in {pod_dir}: {error}", hint="is this a prepared pod?"
        ) from None


def prepare_dirs(spec: PodSpec, paths: PodPaths) -> None:
    write_tree(paths.stage1, tree(spec))
    os.makedirs(paths.status, exist_ok=True)
    for app in spec.apps:
        os.makedirs(paths.upper(app.name), exist_ok=True)
    open(paths.lock, "a").close()


STREAMS = "/run/systemd/journal/streams"


def stream_open(unit: str) -> bool:
    """Whether journald still has an open stdout stream of ``unit`` (it keeps a file per stream)."""
    try:
        names = os.listdir(STREAMS)
    except FileNotFoundError:
        return False
    for name in names:
        try:
            with open(os.path.join(STREAMS, name)) as file:
                if f"UNIT={unit}\n" in file.read():
                    return True
        except OSError:
            continue
    return False


class Follower:
    """Prints the pod's journal lines (its apps' output) as they arrive: ``journalctl -f``."""

    def __init__(self, uuid: str) -> None:
        self._process = subprocess.Popen(
            # POD_UUID is unique to this pod: following from the start loses nothing
            ["journalctl", "--follow", "--lines=all", "--output=cat", "--no-pager", f"POD_UUID={uuid}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.last = time.monotonic()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            self.last = time.monotonic()

    def finish(self, unit: str, quiet: float = 0.05, limit: float = 5.0) -> None:
        """Journald reads a unit's output stream asynchronously: wait until it has closed the
        unit's stream (every line is in the journal), then until the follower has gone quiet."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and stream_open(unit):
            time.sleep(0.02)
        since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - max(self.last, since) < quiet:
            time.sleep(0.02)
        self._process.terminate()
        self._process.wait()
        self._thread.join(timeout=1)


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
    follower = None if detach else Follower(spec.uuid)
    with Systemd() as systemd:
        with open(paths.started, "w") as file:
            file.write(f"{time.time()}\n")
        systemd.start(service)
        if detach:
            status = systemd.wait(service.name, until="active", timeout=READY_TIMEOUT)
            return 0 if status.active_state == "active" else exit_code(status) or 1
        assert follower is not None
        stopping = False

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            if not stopping:  # Ctrl-C: an orderly shutdown of the pod
                stopping = True
                subprocess.run(["systemctl", "stop", "--no-block", service.name], check=False)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)
        status = systemd.wait(service.name, timeout=float("inf"))
        follower.finish(service.name)
        code = exit_code(status)
        systemd.unref(service.name)
    return code


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
