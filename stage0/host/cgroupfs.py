"""What ``nspod stats`` reads from a control group beyond CPU time and memory use
(stage0/host/cgroups.py reads those): the memory limit, the process count the pids controller keeps,
and the bytes read and written on block devices; from cgroup v2 (``memory.max``, ``pids.current``,
``io.stat``) or v1 (``memory.limit_in_bytes``, ``pids.current``, ``blkio.*io_service_bytes*`` in each
controller's own hierarchy). Each reader takes the cgroup file system's root, so the tests feed it
fixture trees; a file that is not there reads None (a controller the group does not have)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from stage0.host.cgroups import read, unified

# v1's "no limit" is the largest page-aligned long; anything this large limits nothing
UNLIMITED = 1 << 62
# v1's byte counters, best first: the scheduler's own (CFQ/BFQ), then the throttle layer's, which
# every scheduler feeds (systemd turns on blkio accounting for a unit with IOAccounting=)
BLKIO_FILES = (
    "blkio.io_service_bytes_recursive",
    "blkio.throttle.io_service_bytes_recursive",
    "blkio.throttle.io_service_bytes",
)


@dataclass(frozen=True, slots=True)
class BlockIO:
    read_bytes: int
    write_bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    memory_limit: int | None  # bytes; None: none set (the host's memory is the limit)
    pids: int | None  # tasks the pids controller counts (threads too); None: no pids controller
    block: BlockIO | None  # None: no I/O accounting for the group


def limit(text: str | None) -> int | None:
    """``memory.max`` ("max") or ``memory.limit_in_bytes`` (a huge number): None when unlimited."""
    value = (text or "").strip()
    if not value.isdigit():
        return None
    return int(value) if int(value) < UNLIMITED else None


def count(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


def io_stat(text: str | None) -> BlockIO | None:
    """v2's ``io.stat``: ``MAJ:MIN rbytes=N wbytes=N rios=N …`` per device, summed."""
    if text is None:
        return None
    read = written = 0
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        read += int(fields.get("rbytes", "0"))
        written += int(fields.get("wbytes", "0"))
    return BlockIO(read, written)


def service_bytes(text: str | None) -> BlockIO | None:
    """v1's ``blkio.*io_service_bytes*``: ``MAJ:MIN Read N`` lines per device (``Total N`` left out)."""
    if text is None:
        return None
    read = written = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                written += int(fields[2])
    return BlockIO(read, written)


def limits(root: str, group: str) -> Limits:
    """The group's (a path relative to each hierarchy's root, as find_group gives it) limits."""
    relative = group.lstrip("/")
    if unified(root):
        path = os.path.join(root, relative)
        return Limits(
            limit(read(os.path.join(path, "memory.max"))),
            count(read(os.path.join(path, "pids.current"))),
            io_stat(read(os.path.join(path, "io.stat"))),
        )
    block = None
    for name in BLKIO_FILES:
        if (block := service_bytes(read(os.path.join(root, "blkio", relative, name)))) is not None:
            break
    return Limits(
        limit(read(os.path.join(root, "memory", relative, "memory.limit_in_bytes"))),
        count(read(os.path.join(root, "pids", relative, "pids.current"))),
        block,
    )


def host_memory(meminfo: str | None) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes: the limit of a group that has none."""
    for line in (meminfo or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None
