"""File locks (flock) and crash-safe temporary workspaces.

A workspace is a directory under ``tmp/`` with a lock file its creator holds while it lives. The
kernel drops the lock when the process dies, however it dies, so the next opener can tell a
leftover of a crash (lock free) from work in progress (lock held) and remove only the former.
A workspace's lock file appears already locked (made under a hidden name, locked, renamed), so
no sweep ever sees it free while its creator lives.

Key locks (:func:`key_locked`) are removed by their last holder, so a lock directory keeps no
file per key ever locked. That is safe because only a holder of the exclusive lock unlinks, and
every taker checks, once it holds the lock, that the path still names the file it locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator

from stage0.host.access import is_reader


@contextlib.contextmanager
def locked(path: str, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on ``path`` (created if missing) for the block."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def lock_held(path: str) -> bool:
    """Whether some process holds an flock on ``path``."""
    if is_reader():  # it may not open root's locks, nor hold them
        return _listed(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _listed(path: str) -> bool:
    """Whether /proc/locks lists an flock on ``path``'s inode. By inode number alone: btrfs shows a
    device there other than stat's, and a false match needs another locked file of that number."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks") as file:
            listed = file.read().splitlines()
    except FileNotFoundError:
        return False
    for line in listed:
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields:
            where = next((f for f in fields if f.count(":") == 2), "")
            if where.rsplit(":", 1)[-1] == str(inode):
                return True
    return False


def _names(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open at ``fd`` (its holder may have unlinked it
    between our open and our lock)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (own.st_dev, own.st_ino)


def try_lock(path: str, *, create: bool = False) -> int | None:
    """An fd holding an exclusive lock on the file ``path`` names, or None if someone else holds
    it (or, unless ``create``, it is gone). Unlinking ``path`` while holding the fd is safe."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _names(fd, path):
            return fd
        os.close(fd)  # its holder removed it before we got the lock
        if not create:
            return None


def _lock_named(path: str, mode: int) -> int:
    """An fd holding ``mode`` on the lock file ``path`` names (created if missing), waiting."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        if _names(fd, path):
            return fd
        os.close(fd)


def unlock_removing(fd: int, path: str) -> None:
    """Release a lock from :func:`try_lock` or :func:`key_locked`, removing its file if no one
    else holds it (a shared holder first tries to become the only one)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours when exclusive
        if _names(fd, path):
            os.unlink(path)
    except BlockingIOError:
        pass  # shared with another holder: the last one removes it
    finally:
        os.close(fd)


@contextlib.contextmanager
def key_locked(path: str, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on the lock file ``path`` for the block; its last holder removes the file."""
    fd = _lock_named(path, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    try:
        yield
    finally:
        unlock_removing(fd, path)


def sweep_locks(directory: str) -> None:
    """Remove the lock files in ``directory`` no one holds (left by killed processes)."""
    for name in os.listdir(directory):
        if name.endswith(".lock"):
            path = os.path.join(directory, name)
            fd = try_lock(path)
            if fd is not None:
                unlock_removing(fd, path)


def remove_tree(path: str) -> None:
    """Remove a directory tree whatever its permission bits (image trees may hold 0555 dirs)."""

    def retry(func: object, failed: str, _exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(failed) if not os.path.isdir(failed) or os.path.islink(failed) else shutil.rmtree(
                failed
            )

    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path, onerror=retry)
    except RecursionError:  # a tree an app made deeper than Python's stack (shutil recurses): rm's own
        from stage0.host.runner import run

        run(["rm", "-rf", "--one-file-system", "--", path], what=f"removing {path}")


def _create_locked(path: str) -> int:
    """A new lock file at ``path``, locked before it appears there: made under a hidden name
    (which a sweep may take and remove before we lock it: then again), locked, renamed."""
    while True:
        hidden = os.path.join(os.path.dirname(path), f".{uuid.uuid4().hex}.lock")
        fd = os.open(hidden, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(hidden, path)
            return fd
        except FileNotFoundError:
            os.close(fd)  # swept between our open and our lock
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(hidden)
            os.close(fd)
            raise


class Workspace:
    """A private temporary directory in ``tmp_root``; removed on close, or by :func:`sweep` after a crash."""

    def __init__(self, tmp_root: str) -> None:
        self.path = os.path.join(tmp_root, f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
        self._lock_path = self.path + ".lock"
        self._fd = _create_locked(self._lock_path)
        try:
            os.mkdir(self.path, 0o700)
        except BaseException:
            os.unlink(self._lock_path)
            os.close(self._fd)
            raise

    def close(self) -> None:
        remove_tree(self.path)
        os.unlink(self._lock_path)
        os.close(self._fd)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def sweep(tmp_root: str) -> list[str]:
    """Remove workspaces whose creator is gone; returns what was removed."""
    removed: list[str] = []
    for name in sorted(os.listdir(tmp_root)):
        base = os.path.join(tmp_root, name.removesuffix(".lock"))
        if name.endswith(".lock"):
            fd = try_lock(base + ".lock")
            if fd is None:
                continue  # alive
            try:
                remove_tree(base)
                os.unlink(base + ".lock")
                removed.append(base)
            finally:
                os.close(fd)
        elif not os.path.exists(base + ".lock"):
            # a directory whose lock file is already gone: its owner died between the two unlinks
            remove_tree(base)
            removed.append(base)
    return removed
