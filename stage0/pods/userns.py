"""User namespaces for pods (``--private-users``): a range of host UIDs and GIDs for each pod,
picked without collisions between pods.

Each pod gets ``USERNS_SIZE`` IDs starting at a multiple of it, from systemd's range for
containers (0x00080000–0x6FFEFFFF, systemd's "Users, Groups, UIDs and GIDs on systemd Systems"),
skipping the ranges other pods hold and those /etc/subuid and /etc/subgid hand out. The choice is
made under a lock and recorded in the pod directory (``userns``) before the lock is let go; a pod
removed frees its range.
"""

from __future__ import annotations

import glob
import os
import re

from stage0.errors import Error, ErrorKind
from stage0.host.atomic import write_atomic
from stage0.images.store.locks import locked
from stage1.abi import USERNS_SIZE

FIRST, END = 0x00080000, 0x6FFF0000
IDMAPPED_OVERLAY = (5, 19)  # overlayfs on ID-mapped layers


class UsernsError(Error):
    kind = ErrorKind.UNAVAILABLE
    hint = "run the pod without --private-users"


def check_kernel(release: str) -> None:
    """``release``: ``uname -r``."""
    found = re.match(r"(\d+)\.(\d+)", release)
    if not found or (int(found[1]), int(found[2])) < IDMAPPED_OVERLAY:
        raise UsernsError(
            f"--private-users needs Linux 5.19 or later (ID-mapped overlay layers); this is {release}"
        )


def taken(pods_root: str, subid_files: tuple[str, ...]) -> list[tuple[int, int]]:
    """(first, count) of every range in use: the pods' and the subordinate IDs'."""
    ranges = []
    for record in glob.glob(os.path.join(pods_root, "*", "*", "userns")):
        try:
            with open(record) as file:
                first, count = (int(word) for word in file.read().split())
        except (OSError, ValueError):
            continue  # a pod removed meanwhile, or one being written (under our lock: not so)
        ranges.append((first, count))
    for path in subid_files:
        try:
            with open(path) as file:
                for line in file:
                    fields = line.strip().split(":")
                    if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                        ranges.append((int(fields[1]), int(fields[2])))
        except OSError:
            continue
    return ranges


def free_range(ranges: list[tuple[int, int]]) -> int:
    """The lowest range start that overlaps none of ``ranges``."""
    for first in range(FIRST, END, USERNS_SIZE):
        if all(first + USERNS_SIZE <= start or start + count <= first for start, count in ranges):
            return first
    raise UsernsError("no free range of user IDs left for another pod", hint="remove pods that have ended")


def allocate(
    pods_root: str, pod_path: str, subid_files: tuple[str, ...] = ("/etc/subuid", "/etc/subgid")
) -> int:
    """Pick the pod's range and record it in ``pod_path/userns``; returns its first host ID."""
    check_kernel(os.uname().release)
    with locked(os.path.join(pods_root, "userns.lock")):
        first = free_range(taken(pods_root, subid_files))
        record = os.path.join(pod_path, "userns")
        write_atomic(record, f"{first} {USERNS_SIZE}\n", sync=False)
    return first
