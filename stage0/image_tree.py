"""An app's rendered image as the planner sees it: a small protocol of look-ups inside the tree
(paths resolved as the app would, symlinks followed inside the image, never out of it), and the
real adapter over a rendered rootfs on disk. Tests give the planner trees held in memory."""

from __future__ import annotations

import os
from typing import Protocol


class ImageTree(Protocol):
    @property
    def rootfs(self) -> str:
        """The tree's host path (what stage1 mounts as the app's root)."""
        ...

    def is_executable(self, path: str) -> bool:
        """Whether the absolute in-image ``path`` is an executable regular file."""
        ...

    def account(self, table: str, name: str) -> int | None:
        """The ID of ``name`` in the image's ``/etc/passwd`` or ``/etc/group`` (``table``)."""
        ...

    def owner(self, path: str) -> tuple[int, int] | None:
        """(uid, gid) of the in-image ``path``, or None when it is not there."""
        ...


class RootfsTree:
    """A rendered rootfs on disk."""

    def __init__(self, rootfs: str) -> None:
        self._root = rootfs

    @property
    def rootfs(self) -> str:
        return self._root

    def resolve(self, path: str, hops: int = 40) -> str | None:
        """The host path of the in-image ``path``, symlinks followed as the app would see them (an
        absolute link target is taken inside the image); None when it does not exist."""
        parts = [p for p in path.split("/") if p not in ("", ".")]
        current: list[str] = []
        while parts:
            part = parts.pop(0)
            if part == "..":
                current = current[:-1]
                continue
            candidate = os.path.join(self._root, *current, part)
            if os.path.islink(candidate):
                if hops == 0:
                    return None
                hops -= 1
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            if not os.path.lexists(candidate):
                return None
            current.append(part)
        return os.path.join(self._root, *current)

    def is_executable(self, path: str) -> bool:
        host = self.resolve(path)
        return bool(host and os.path.isfile(host) and os.access(host, os.X_OK))

    def account(self, table: str, name: str) -> int | None:
        host = self.resolve(f"/etc/{table}")
        if host is None or not os.path.isfile(host):
            return None
        with open(host, errors="replace") as file:
            for line in file:
                fields = line.rstrip("\n").split(":")
                if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                    return int(fields[2])
        return None

    def owner(self, path: str) -> tuple[int, int] | None:
        host = self.resolve(path)
        if host is None:
            return None
        st = os.stat(host)
        return st.st_uid, st.st_gid
