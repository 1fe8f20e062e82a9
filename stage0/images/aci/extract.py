"""Safe extraction of an image's ``rootfs/`` into a fresh directory.

An image is hostile until proven otherwise. The target directory is new and only this writer
touches it, so it knows the kind of every path it created: an entry whose parent is anything but
a directory it made (a symlink planted earlier, a file) is refused, as are absolute and ``..``
paths, hard links to anything but a file already extracted, duplicates, device nodes and fifos
outside ``/dev``, and set-id bits on anything but regular files. Files are created with
``O_EXCL|O_NOFOLLOW`` as a second line of defence.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

from stage0.images.aci.tarstream import Entry, EntryType, TarError

MANIFEST, ROOTFS = "manifest", "rootfs"
SPECIAL_TYPES = (EntryType.CHARDEV, EntryType.BLOCKDEV, EntryType.FIFO)
_IMPLICIT = "implicit directory"  # a parent we had to create because the archive did not list it


@dataclass(frozen=True, slots=True)
class Target:
    """Where an archive entry goes: the manifest, or a path relative to rootfs ("" is rootfs itself)."""

    top: str
    rel: str


def classify(name: str) -> Target:
    """Split an archive name into manifest / rootfs path, refusing anything outside them."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/"):
        raise TarError(f"absolute path {name!r} in image", hint="an image's paths must stay inside it")
    if ".." in parts:
        raise TarError(f"path {name!r} climbs out with '..'", hint="an image's paths must stay inside it")
    if parts == [MANIFEST]:
        return Target(MANIFEST, "")
    if parts and parts[0] == ROOTFS:
        return Target(ROOTFS, "/".join(parts[1:]))
    shown = "/".join(parts) or name
    raise TarError(
        f"unexpected entry {shown!r}", hint="an ACI holds only 'manifest' and 'rootfs/' at its top level"
    )


def link_target(entry: Entry) -> str:
    """A hard link's target as a path relative to rootfs."""
    target = classify(entry.linkname)
    if target.top != ROOTFS or not target.rel:
        raise TarError(f"hard link {entry.name!r} points at {entry.linkname!r}, outside the image's files")
    return target.rel


def safe_mode(entry: Entry) -> int:
    """The permission bits to apply: set-uid/gid only on regular files (and set-gid on directories)."""
    mode = entry.mode & 0o7777
    if entry.type is EntryType.DIR:
        return mode & ~stat.S_ISUID
    if entry.type is not EntryType.FILE:
        return mode & 0o1777 & ~stat.S_ISVTX
    return mode


def check_placement(entry: Entry, rel: str, kinds: dict[str, str]) -> list[str]:
    """Refuse what this entry may not do given what is already there; returns parents to create."""
    if not rel:
        if entry.type is not EntryType.DIR:
            raise TarError("'rootfs' is not a directory")
        return []
    if rel in kinds and not (kinds[rel] == _IMPLICIT and entry.type is EntryType.DIR):
        raise TarError(f"duplicate entry 'rootfs/{rel}'")
    missing: list[str] = []
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        kind = kinds.get(parent)
        if kind is None:
            missing.append(parent)
        elif kind not in (EntryType.DIR, _IMPLICIT):
            raise TarError(
                f"'rootfs/{rel}' would be written through the {kind} 'rootfs/{parent}'",
                hint="the image tries to write outside its tree; it is refused",
            )
    if entry.type in SPECIAL_TYPES and parts[0] != "dev":
        raise TarError(
            f"{entry.type} 'rootfs/{rel}' outside /dev", hint="device nodes and fifos belong in /dev"
        )
    if entry.type is EntryType.HARDLINK:
        target = link_target(entry)
        if kinds.get(target) != EntryType.FILE:
            raise TarError(
                f"hard link 'rootfs/{rel}' points at {entry.linkname!r}, which is not a file "
                "extracted before it"
            )
    return missing


class PlacementCheck:
    """TreeWriter's checks without the writing: validating an archive reads it as if extracting."""

    bytes = 0

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def add(self, entry: Entry, rel: str, data: Iterable[memoryview]) -> None:
        for parent in check_placement(entry, rel, self.kinds):
            self.kinds[parent] = _IMPLICIT
        self.kinds[rel] = EntryType.FILE if entry.type is EntryType.HARDLINK else entry.type

    def finish(self) -> None:
        pass


class TreeWriter:
    """Write one image's rootfs into ``root`` (an empty directory), entry by entry."""

    def __init__(self, root: str, *, preserve_owner: bool | None = None) -> None:
        self.root = root
        self.kinds: dict[str, str] = {}
        self.bytes = 0
        self._owner = os.geteuid() == 0 if preserve_owner is None else preserve_owner
        self._dir_times: list[tuple[str, float]] = []

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def add(self, entry: Entry, rel: str, data: Iterable[memoryview]) -> None:
        for parent in check_placement(entry, rel, self.kinds):
            os.mkdir(self._path(parent), 0o755)
            self.kinds[parent] = _IMPLICIT
        path = self._path(rel)
        mode = safe_mode(entry)
        match entry.type:
            case EntryType.FILE:
                self._write_file(path, entry, mode, data)
            case EntryType.DIR:
                if rel and rel not in self.kinds:
                    os.mkdir(path, 0o700)
                os.chmod(path, mode, follow_symlinks=False)
                self._dir_times.append((path, entry.mtime))
            case EntryType.SYMLINK:
                os.symlink(entry.linkname, path)
            case EntryType.HARDLINK:
                os.link(self._path(link_target(entry)), path, follow_symlinks=False)
            case EntryType.FIFO:
                os.mkfifo(path, mode)
            case EntryType.CHARDEV | EntryType.BLOCKDEV:
                kind = stat.S_IFCHR if entry.type is EntryType.CHARDEV else stat.S_IFBLK
                os.mknod(path, mode | kind, os.makedev(entry.devmajor, entry.devminor))
        if entry.type is not EntryType.HARDLINK:
            self._finish_entry(path, entry, mode)
        self.kinds[rel] = EntryType.FILE if entry.type is EntryType.HARDLINK else entry.type

    def _write_file(self, path: str, entry: Entry, mode: int, data: Iterable[memoryview]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            for piece in data:
                while piece:
                    written = os.write(fd, piece)
                    piece = piece[written:]
            self.bytes += entry.size
            if self._owner:
                os.fchown(fd, entry.uid, entry.gid)
            os.fchmod(fd, mode)  # after chown, which clears set-id bits
            for name, value in entry.xattrs:
                self._xattr(fd, name, value)
            os.utime(fd, ns=(int(entry.mtime * 1e9),) * 2)
        finally:
            os.close(fd)

    def _finish_entry(self, path: str, entry: Entry, mode: int) -> None:
        if entry.type is EntryType.FILE:
            return  # done on the open descriptor
        if self._owner:
            os.chown(path, entry.uid, entry.gid, follow_symlinks=False)
            if entry.type is not EntryType.SYMLINK:
                os.chmod(path, mode)
        for name, value in entry.xattrs if entry.type is not EntryType.SYMLINK else ():
            self._xattr(path, name, value)
        if entry.type is not EntryType.DIR:
            os.utime(path, ns=(int(entry.mtime * 1e9),) * 2, follow_symlinks=False)

    @staticmethod
    def _xattr(target: int | str, name: str, value: bytes) -> None:
        # a file system without xattrs (or this namespace) keeps the file, not the attribute
        with contextlib.suppress(OSError):
            if isinstance(target, str):
                os.setxattr(target, name, value, follow_symlinks=False)
            else:
                os.setxattr(target, name, value)

    def finish(self) -> None:
        """Directory times last: creating children would have changed them."""
        for path, mtime in reversed(self._dir_times):
            os.utime(path, ns=(int(mtime * 1e9),) * 2, follow_symlinks=False)
