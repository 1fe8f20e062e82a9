"""Mounts a dead process left below a pod's directory, and removal that never crosses one.

A pod's own mounts live in nspawn's namespace and end with it, but ``app add`` mounts the app's
root on the host for a moment (stage1/nspawn/apps.py join) and a kill -9 in that moment leaves it there.
Whatever is mounted below a pod's directory on the host is the pod's: ``stop``, ``rm`` and ``gc``
detach it (:func:`detach_below`), and a pod's tree is deleted only once nothing is mounted in it
(:func:`remove_unmounted`): rm -rf through a bind mount of a host volume deletes the user's data.
"""

from __future__ import annotations

import ctypes
import os
import re

from stage0.errors import UnavailableError
from stage0.images.store.locks import remove_tree

MOUNTINFO = "/proc/self/mountinfo"
MNT_DETACH = 2
_ESCAPE = re.compile(r"\\([0-7]{3})")  # mountinfo writes space, tab, newline and \ as \ooo


def mount_points(mountinfo: str) -> list[str]:
    """The mount points of a mountinfo text, in its order."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) > 4:
            points.append(_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def shared_at(mountinfo: str, path: str) -> bool:
    """Whether the mount ``path`` lies on (the last one mounted at the deepest point above or at
    it) has shared propagation: what containerd asks of a bidirectional mount's host path."""
    found = False
    best = -1
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 7:
            continue
        point = _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[4])
        if path == point or path.startswith(point.rstrip("/") + "/"):
            depth = len(point.rstrip("/"))
            if depth >= best:  # a later line at the same point is mounted over the earlier
                best = depth
                optional = fields[6 : fields.index("-")] if "-" in fields else []
                found = any(o.startswith("shared:") for o in optional)
    return found


def host_shared(path: str) -> bool:
    with open(MOUNTINFO) as file:
        return shared_at(file.read(), os.path.realpath(path))


def below(points: list[str], path: str) -> list[str]:
    """The points at or below ``path``, deepest first (so that each can be detached in turn)."""
    path = path.rstrip("/") or "/"
    inside = {p for p in points if p == path or p.startswith(path + "/")}
    return sorted(inside, key=lambda p: (-p.count("/"), p))


def mounts_below(path: str) -> list[str]:
    """What is mounted on the host at or below ``path`` (resolved, as the kernel shows it)."""
    with open(MOUNTINFO) as file:
        return below(mount_points(file.read()), os.path.realpath(path))


def detach_below(path: str) -> None:
    """Detach every mount at or below ``path`` (lazily: a process still using one keeps its copy)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(8):  # a stack of mounts on one point goes one layer a round
        points = mounts_below(path)
        if not points:
            return
        for point in points:
            libc.umount2(point.encode(), MNT_DETACH)  # EINVAL: gone with its parent already
    if points := mounts_below(path):
        raise UnavailableError(
            f"cannot detach {points[0]} ({len(points)} mount(s) below {path})",
            hint=f"see 'findmnt -R {path}'; nspod removes nothing while something is mounted there",
        )


def remove_unmounted(path: str) -> None:
    """Remove the tree at ``path`` once what is mounted in it is detached; never through a mount."""
    detach_below(path)
    remove_tree(path)
