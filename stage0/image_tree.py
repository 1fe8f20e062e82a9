"""An app's rendered image as the planner sees it: a small protocol of look-ups inside the tree
(paths resolved as the app would, symlinks followed inside the image, never out of it), and the
real adapter over a rendered rootfs on disk. Tests give the planner trees held in memory."""

from __future__ import annotations

import os
import stat
from typing import Protocol


class ImageTree(Protocol):
    @property
    def rootfs(self) -> str:
        """The tree's host path (what stage1 mounts as the app's root; an OCI image's top layer)."""
        ...

    @property
    def lower(self) -> tuple[str, ...]:
        """The layers beneath ``rootfs``, top first (an OCI image's; none for an ACI)."""
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

    def primary_group(self, user: str) -> int | None:
        """The group of ``user`` (a name or a UID) in the image's ``/etc/passwd``."""
        ...

    def member_of(self, user: str) -> tuple[int, ...]:
        """The groups whose members ``/etc/group`` lists ``user`` (a name, or a UID by its name in
        ``/etc/passwd``) among."""
        ...


class RootfsTree:
    """A rendered rootfs on disk."""

    def __init__(self, rootfs: str) -> None:
        self._root = rootfs

    @property
    def rootfs(self) -> str:
        return self._root

    @property
    def lower(self) -> tuple[str, ...]:
        return ()

    def _find(self, parts: list[str]) -> str | None:
        """The host path of the in-image path ``parts`` (no symlink among them), if it exists."""
        candidate = os.path.join(self._root, *parts)
        return candidate if os.path.lexists(candidate) else None

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
            candidate = self._find([*current, part])
            if candidate is None:
                return None
            if os.path.islink(candidate):
                if hops == 0:
                    return None
                hops -= 1
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            current.append(part)
        return self._find(current) if current else self._root

    def is_executable(self, path: str) -> bool:
        host = self.resolve(path)
        return bool(host and os.path.isfile(host) and os.access(host, os.X_OK))

    def _entries(self, table: str) -> list[list[str]]:
        """The lines of the image's ``/etc/{table}``, split at colons (none if it has no file)."""
        host = self.resolve(f"/etc/{table}")
        if host is None or not os.path.isfile(host):
            return []
        with open(host, errors="replace") as file:
            return [line.rstrip("\n").split(":") for line in file]

    def account(self, table: str, name: str) -> int | None:
        for fields in self._entries(table):
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        return None

    def primary_group(self, user: str) -> int | None:
        """The group of ``user`` (a name or a UID) in the image's /etc/passwd."""
        for fields in self._entries("passwd"):
            if len(fields) > 3 and user in (fields[0], fields[2]) and fields[3].isdigit():
                return int(fields[3])
        return None

    def member_of(self, user: str) -> tuple[int, ...]:
        names = {user} | {f[0] for f in self._entries("passwd") if len(f) > 2 and f[2] == user}
        return tuple(
            int(fields[2])
            for fields in self._entries("group")
            if len(fields) > 3 and fields[2].isdigit() and names & set(fields[3].split(","))
        )

    def owner(self, path: str) -> tuple[int, int] | None:
        host = self.resolve(path)
        if host is None:
            return None
        st = os.stat(host)
        return st.st_uid, st.st_gid


OPAQUE_XATTR = "trusted.overlay.opaque"


class LayeredTree(RootfsTree):
    """An OCI image's layers as overlayfs will merge them: a path is the topmost layer's, unless a
    whiteout (a 0/0 character device) removes it or an opaque directory hides what lies below."""

    def __init__(self, layers: tuple[str, ...]) -> None:  # top first
        super().__init__(layers[0])
        self._layers = layers

    @property
    def lower(self) -> tuple[str, ...]:
        return self._layers[1:]

    def _find(self, parts: list[str]) -> str | None:
        for layer in self._layers:
            candidate = os.path.join(layer, *parts)
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                if _hides_below(layer, parts):
                    return None
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                return None  # a whiteout
            return candidate
        return None


def _hides_below(layer: str, parts: list[str]) -> bool:
    """Whether ``layer`` ends the search for ``parts``: a parent of it there is opaque or no directory."""
    for depth in range(1, len(parts)):
        parent = os.path.join(layer, *parts[:depth])
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode):
            return True
        try:
            if os.getxattr(parent, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False
