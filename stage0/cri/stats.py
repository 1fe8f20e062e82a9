"""ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats: the numbers, read
from a pod's directory and its control groups (stage0/cri/cgroups.py), as typed values; the
servicer (stage0/cri/runtime.py) puts them into the CRI's messages with ``fill_*``.

A container is an app of a pod: its group is ``<app>.service`` under the pod's host unit's group
(the pod's systemd names it so); its writable layer is the upper directory of its overlay. A
sandbox's network counters are its namespace's interfaces (``/proc/<pid>/net/dev`` of its
systemd, PID 1 in the pod), loopback left out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stage0.host import cgroups
from stage0.host.cgroups import DiskUsage, Interface, Usage
from stage0.host.executor import fly_unit
from stage1.abi import Error, PodPaths, PodSpec


@dataclass(frozen=True, slots=True)
class Sample:
    timestamp_ns: int
    usage: Usage
    nano_cores: int | None  # the CPU rate since the last sample of the same group, when there was one


@dataclass(frozen=True, slots=True)
class ContainerSample:
    cpu: Sample
    writable_layer: DiskUsage
    layer_path: str


@dataclass(frozen=True, slots=True)
class PodSample:
    cpu: Sample
    interfaces: tuple[Interface, ...]
    containers: tuple[tuple[str, ContainerSample], ...] = ()  # (container ID, its sample)


_last: dict[str, tuple[int, int]] = {}  # group → (timestamp, cpu ns): kubelet wants a rate too
_lock = threading.Lock()


def _rate(group: str, now: int, cpu_ns: int) -> int | None:
    with _lock:
        before = _last.get(group)
        _last[group] = (now, cpu_ns)
    if before is None or now <= before[0] or cpu_ns < before[1]:
        return None
    return (cpu_ns - before[1]) * 1_000_000_000 // (now - before[0])


def _pod_unit(paths: PodPaths) -> str | None:
    try:
        with open(paths.unit) as file:
            return file.read().strip() or None
    except OSError:
        return None


def pod_group(paths: PodPaths, root: str = cgroups.ROOT) -> str | None:
    """The pod's host unit's group; None when the pod does not run."""
    unit = _pod_unit(paths)
    return cgroups.find_group(root, unit, slice_=_pod_slice(paths)) if unit else None


def _pod_slice(paths: PodPaths) -> str:
    """The slice the pod's unit was put in (its spec's cgroup parent), else machine.slice."""
    try:
        with open(paths.spec) as file:
            return PodSpec.from_json(file.read()).slice or cgroups.SLICE
    except (OSError, ValueError, Error):
        return cgroups.SLICE


def sample(group: str | None, root: str = cgroups.ROOT, proc: str = cgroups.PROC) -> Sample:
    """A group's usage now (all zero, stamped, for a group that is not there: a container
    created and not started, or ended, still has stats, as kubelet and critest expect)."""
    now = time.time_ns()
    if group is None or not os.path.isdir(os.path.join(_tree(root), group.lstrip("/"))):
        return Sample(now, Usage(0, 0, 0, 0, 0, 0, 0), None)
    usage = cgroups.usage(root, group, proc)
    return Sample(now, usage, _rate(group, now, usage.cpu_ns))


def _tree(root: str) -> str:
    return root if cgroups.unified(root) else os.path.join(root, "systemd")


def container_stats(
    pod_dir: str, app: str, root: str = cgroups.ROOT, proc: str = cgroups.PROC
) -> ContainerSample:
    paths = PodPaths(pod_dir)
    pod = pod_group(paths, root)
    group = cgroups.find_group(root, f"{app}.service", below=pod) if pod else None
    if pod and group is None:  # an app of a hostPID sandbox: a unit of the host's (stage1/fly)
        unit = fly_unit(os.path.basename(pod_dir.rstrip("/")), app)
        group = cgroups.find_group(root, unit, below="/system.slice", depth=0)
    layer = paths.upper(app)
    return ContainerSample(sample(group, root, proc), cgroups.disk_usage(layer), layer)


def pod_stats(pod_dir: str, root: str = cgroups.ROOT, proc: str = cgroups.PROC) -> PodSample:
    paths = PodPaths(pod_dir)
    group = pod_group(paths, root)
    found: list[Interface] = []
    init = cgroups.find_group(root, "init.scope", below=group) if group else None
    for pid in cgroups.pids(root, init) if init else []:
        try:
            with open(os.path.join(proc, str(pid), "net", "dev")) as file:
                found = cgroups.interfaces(file.read())
            break
        except OSError:
            continue
    return PodSample(sample(group, root, proc), tuple(found))


# --- filters ---


def selected(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    """A CRI label selector: every pair in it is among the labels."""
    return all(labels.get(key) == value for key, value in selector.items())


# --- into the CRI's messages (duck-typed: the stubs are generated; see stage0/cri/proto) ---


def fill_cpu(message: Any, cpu: Sample) -> None:
    message.timestamp = cpu.timestamp_ns
    message.usage_core_nano_seconds.value = cpu.usage.cpu_ns
    if cpu.nano_cores is not None:
        message.usage_nano_cores.value = cpu.nano_cores


def fill_memory(message: Any, cpu: Sample) -> None:
    usage = cpu.usage
    message.timestamp = cpu.timestamp_ns
    message.working_set_bytes.value = usage.working_set_bytes
    message.usage_bytes.value = usage.memory_bytes
    message.rss_bytes.value = usage.rss_bytes
    message.page_faults.value = usage.page_faults
    message.major_page_faults.value = usage.major_page_faults


def fill_container(message: Any, sampled: ContainerSample) -> None:
    """A ``ContainerStats`` (its ``attributes`` are the caller's: ID, metadata, labels)."""
    fill_cpu(message.cpu, sampled.cpu)
    fill_memory(message.memory, sampled.cpu)
    layer = message.writable_layer
    layer.timestamp = sampled.cpu.timestamp_ns
    layer.fs_id.mountpoint = sampled.layer_path
    layer.used_bytes.value = sampled.writable_layer.bytes
    layer.inodes_used.value = sampled.writable_layer.inodes


def fill_pod(message: Any, sampled: PodSample) -> None:
    """A ``PodSandboxStats``' ``linux`` part (its ``attributes`` and containers are the caller's)."""
    linux = message.linux
    fill_cpu(linux.cpu, sampled.cpu)
    fill_memory(linux.memory, sampled.cpu)
    network = linux.network
    network.timestamp = sampled.cpu.timestamp_ns
    for index, interface in enumerate(sampled.interfaces):
        target = network.default_interface if index == 0 else network.interfaces.add()
        target.name = interface.name
        target.rx_bytes.value = interface.rx_bytes
        target.rx_errors.value = interface.rx_errors
        target.tx_bytes.value = interface.tx_bytes
        target.tx_errors.value = interface.tx_errors
    linux.process.timestamp = sampled.cpu.timestamp_ns
    linux.process.process_count.value = sampled.cpu.usage.processes
