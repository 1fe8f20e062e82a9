"""What a running pod and each of its apps use now (``nspod stats``), read from their control
groups (v1 or v2: stage0/cri/cgroups.py for CPU time and memory, stage0/host/cgroupfs.py for the
limit, the pids controller's count and block I/O) and, for the network, from the interfaces of the
pod's namespace (``/proc/<pid>/net/dev`` of the pod's systemd). A snapshot: rates (CPU %) are the
front end's, from two snapshots (:func:`cpu_percent`).

On a v1 host an app has no groups of its own in the controllers' hierarchies (the pod's systemd
gets none to delegate): its CPU time and memory are summed from its processes, its limit and
block I/O are unknown (None); the pod's own numbers are its host unit's groups' either way."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from stage0.api.views import PodView, pod_view
from stage0.cri.stats import pod_group
from stage0.errors import FailedPreconditionError
from stage0.host import cgroupfs, cgroups
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pods, PodState
from stage1.abi import PodPaths


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_ns: int  # CPU time since the group began, all cores
    memory_bytes: int
    memory_limit: int | None  # None: no limit of its own
    pids: int  # tasks (threads too) where the pids controller counts them, else processes
    block: cgroupfs.BlockIO | None  # None: not accounted


@dataclass(frozen=True, slots=True)
class AppUsage:
    name: str
    usage: Usage | None  # None: the app does not run


@dataclass(frozen=True, slots=True)
class PodUsage:
    view: PodView
    at: float  # time.monotonic() of the reading
    usage: Usage
    net_rx: int  # bytes over the pod's interfaces, loopback left out
    net_tx: int
    apps: tuple[AppUsage, ...]


def cpu_percent(before_ns: int, after_ns: int, seconds: float) -> float:
    """CPU time over wall time, in percent of one core (400 % is four cores busy, as podman says)."""
    if seconds <= 0 or after_ns < before_ns:
        return 0.0
    return (after_ns - before_ns) / (seconds * 1e9) * 100


def running(options: GlobalOptions, refs: list[str]) -> list[PodView]:
    """The pods named (each must run), or every running pod."""
    pods = Pods(options.dir)
    if not refs:
        views = []
        for pod in pods.all():
            try:
                if pod.state() is PodState.RUNNING:
                    views.append(pod_view(pod))
            except FileNotFoundError:  # it ended and went meanwhile
                continue
        return views
    views = []
    for ref in refs:
        pod = pods.find(ref)
        if (state := pod.state()) is not PodState.RUNNING:
            raise FailedPreconditionError(f"pod {pod.uuid} is {state}", hint="only a running pod has stats")
        views.append(pod_view(pod))
    return views


def pod_usage(view: PodView, root: str = cgroups.ROOT, proc: str = cgroups.PROC) -> PodUsage:
    """The pod's numbers now; a pod that stopped meanwhile reads as zeros."""
    group = pod_group(PodPaths(view.path), root)
    at = time.monotonic()
    if group is None:
        return PodUsage(view, at, Usage(0, 0, None, 0, None), 0, 0, ())
    rx, tx = _network(root, group, proc)
    apps = tuple(
        AppUsage(app.name, _app(root, group, app.name, proc) if app.exit_code is None else None)
        for app in view.apps
    )
    return PodUsage(view, at, group_usage(root, group, proc), rx, tx, apps)


def group_usage(root: str, group: str, proc: str = cgroups.PROC) -> Usage:
    used = cgroups.usage(root, group, proc)
    limits = cgroupfs.limits(root, group)
    return Usage(
        used.cpu_ns,
        used.memory_bytes,
        limits.memory_limit,
        limits.pids if limits.pids is not None else used.processes,
        limits.block,
    )


def _app(root: str, pod: str, app: str, proc: str) -> Usage | None:
    group = cgroups.find_group(root, f"{app}.service", below=pod)
    if group is None:
        return None
    if cgroups.unified(root):
        return group_usage(root, group, proc)
    used = cgroups.from_processes(cgroups.pids(root, group), proc)  # no v1 groups of its own
    return Usage(used.cpu_ns, used.memory_bytes, None, used.processes, None)


def _network(root: str, group: str, proc: str) -> tuple[int, int]:
    init = cgroups.find_group(root, "init.scope", below=group)
    for pid in cgroups.pids(root, init) if init else []:
        try:
            with open(os.path.join(proc, str(pid), "net", "dev")) as file:
                found = cgroups.interfaces(file.read())
        except OSError:
            continue
        return sum(i.rx_bytes for i in found), sum(i.tx_bytes for i in found)
    return 0, 0
