"""What a pod's and an app's control groups say they use: CPU time, memory, processes, from
cgroup v2 (a unified tree, most hosts) or v1 (a hierarchy per controller, systemd's own in
``name=systemd``; a hybrid host's unified tree at ``unified/`` is systemd's alone).

Each reader takes the cgroup file system's root, so the tests feed it fixture trees. Where a v1
controller has no group for an app (a pod's systemd gets no v1 controllers to delegate: only its
host unit is accounted), the app's numbers are summed from its processes' ``/proc`` entries.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

ROOT = "/sys/fs/cgroup"
PROC = "/proc"
SLICE = "machine.slice"  # where nspod's host units live unless a cgroup parent says otherwise
NS_PER_USEC = 1000
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_ns: int  # CPU time used, all cores, since the group began
    memory_bytes: int  # usage, page cache included
    working_set_bytes: int  # usage less the inactive file cache (kubelet's eviction measure)
    rss_bytes: int
    page_faults: int
    major_page_faults: int
    processes: int


def unified(root: str = ROOT) -> bool:
    """A cgroup v2 host: one tree, controllers listed at its root."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def _systemd_tree(root: str) -> str:
    """The hierarchy systemd names its units in: the unified tree, or v1's name=systemd one."""
    return root if unified(root) else os.path.join(root, "systemd")


def read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def _int(path: str) -> int | None:
    text = read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def flat_keyed(text: str | None) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat)."""
    values = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    return values


def slice_group(name: str) -> str:
    """The group of slice ``name``: systemd nests a dash-named slice in its prefixes' slices
    (``kubepods-pod1.slice`` is ``/kubepods.slice/kubepods-pod1.slice``)."""
    parts = name.removesuffix(".slice").split("-")
    return "".join(f"/{'-'.join(parts[: i + 1])}.slice" for i in range(len(parts)))


def find_group(root: str, unit: str, below: str = "", depth: int = 5, slice_: str = SLICE) -> str | None:
    """The path (relative to the systemd tree, "/"-led) of the group named ``unit`` under ``below``
    (a pod's host unit under its slice, ``slice_``, first; an app's service under its pod's group)."""
    tree = _systemd_tree(root)
    start = os.path.join(tree, below.lstrip("/"))
    if not below and os.path.isdir(os.path.join(tree, slice_group(slice_).lstrip("/"), unit)):
        return f"{slice_group(slice_)}/{unit}"
    base = start.rstrip("/").count("/")
    for directory, subdirs, _ in os.walk(start):
        if unit in subdirs:
            return "/" + os.path.relpath(os.path.join(directory, unit), tree)
        if directory.count("/") - base >= depth:
            subdirs.clear()
    return None


def pids(root: str, group: str) -> list[int]:
    """Every process in ``group`` and the groups beneath it."""
    found: list[int] = []
    for directory, _, files in os.walk(os.path.join(_systemd_tree(root), group.lstrip("/"))):
        if "cgroup.procs" in files:
            text = read(os.path.join(directory, "cgroup.procs")) or ""
            found += [int(p) for p in text.split()]
    return found


def usage(root: str, group: str, proc: str = PROC) -> Usage:
    """What ``group`` (a path from ``find_group``) uses now."""
    return _v2(root, group) if unified(root) else _v1(root, group, proc)


def _v2(root: str, group: str) -> Usage:
    path = os.path.join(root, group.lstrip("/"))
    cpu = flat_keyed(read(os.path.join(path, "cpu.stat")))
    memory = flat_keyed(read(os.path.join(path, "memory.stat")))
    current = _int(os.path.join(path, "memory.current")) or 0
    processes = _int(os.path.join(path, "pids.current"))
    return Usage(
        cpu_ns=cpu.get("usage_usec", 0) * NS_PER_USEC,
        memory_bytes=current,
        working_set_bytes=max(0, current - memory.get("inactive_file", 0)),
        rss_bytes=memory.get("anon", 0),
        page_faults=memory.get("pgfault", 0),
        major_page_faults=memory.get("pgmajfault", 0),
        processes=processes if processes is not None else len(pids(root, group)),
    )


def _controller(root: str, names: tuple[str, ...], group: str) -> str | None:
    """The group's directory in a v1 controller's hierarchy (mounted alone or co-mounted)."""
    for name in names:
        path = os.path.join(root, name, group.lstrip("/"))
        if os.path.isdir(path):
            return path
    return None


def _v1(root: str, group: str, proc: str) -> Usage:
    members = pids(root, group)
    cpu_dir = _controller(root, ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"), group)
    cpu = _int(os.path.join(cpu_dir, "cpuacct.usage")) if cpu_dir else None
    memory_dir = _controller(root, ("memory",), group)
    current = _int(os.path.join(memory_dir, "memory.usage_in_bytes")) if memory_dir else None
    counted = from_processes(members, proc) if cpu is None or current is None else None
    if memory_dir is None or current is None:
        assert counted is not None
        return Usage(
            cpu_ns=cpu if cpu is not None else counted.cpu_ns,
            memory_bytes=counted.memory_bytes,
            working_set_bytes=counted.working_set_bytes,
            rss_bytes=counted.rss_bytes,
            page_faults=counted.page_faults,
            major_page_faults=counted.major_page_faults,
            processes=len(members),
        )
    memory = flat_keyed(read(os.path.join(memory_dir, "memory.stat")))
    return Usage(
        cpu_ns=cpu if cpu is not None else counted.cpu_ns if counted else 0,
        memory_bytes=current,
        working_set_bytes=max(0, current - memory.get("total_inactive_file", 0)),
        rss_bytes=memory.get("total_rss", 0),
        page_faults=memory.get("total_pgfault", 0),
        major_page_faults=memory.get("total_pgmajfault", 0),
        processes=len(members),
    )


def from_processes(members: list[int], proc: str = PROC) -> Usage:
    """The sum over live processes (what ended with its CPU time is not counted: a v1 fallback)."""
    cpu = rss = faults = major = 0
    for pid in members:
        stat = read(os.path.join(proc, str(pid), "stat"))
        if stat is None:
            continue
        fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
        # from field 3 (state) on: minflt 10, majflt 12, utime 14, stime 15, rss 24
        faults += int(fields[7])
        major += int(fields[9])
        cpu += (int(fields[11]) + int(fields[12])) * _TICK_NS
        rss += int(fields[21]) * _PAGE
    return Usage(cpu, rss, rss, rss, faults, major, len(members))


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int


def interfaces(text: str) -> list[Interface]:
    """``/proc/<pid>/net/dev`` of a process in the pod's network namespace, loopback left out."""
    found = []
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        values = counters.split()
        if name.strip() == "lo" or len(values) < 11:
            continue
        rx_bytes, rx_errors, tx_bytes, tx_errors = (int(values[i]) for i in (0, 2, 8, 10))
        found.append(Interface(name.strip(), rx_bytes, rx_errors, tx_bytes, tx_errors))
    return found


@dataclass(frozen=True, slots=True)
class DiskUsage:
    bytes: int
    inodes: int


def disk_usage(top: str) -> DiskUsage:
    """Blocks and inodes under ``top`` (an app's writable layer), links not followed, a file with
    several links counted once."""
    seen: set[tuple[int, int]] = set()
    used = inodes = 0
    for entry in _entries(top):
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            used += info.st_blocks * 512
            inodes += 1
    return DiskUsage(used, inodes)


def _entries(top: str) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(top) as listing:
            for entry in listing:
                yield entry
                if entry.is_dir(follow_symlinks=False):
                    yield from _entries(entry.path)
    except OSError:
        return
