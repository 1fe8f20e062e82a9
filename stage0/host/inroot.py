"""Paths of an app's root opened from the host, resolved the way the app itself would resolve them:
openat2(2) with RESOLVE_IN_ROOT, so every link (absolute or relative, in any component) and every
``..`` stays inside the root, and RESOLVE_NO_MAGICLINKS, so /proc/self/... in the app leads nowhere
on the host. The root is a directory descriptor — the app's own ``/proc/PID/root``, mounts and
volumes and all — and every later step (a directory's entries, a file to read or make) opens
relative to a descriptor this module gave, never by a path the app could change meanwhile."""

from __future__ import annotations

import ctypes
import errno
import os
import stat

RESOLVE_NO_MAGICLINKS, RESOLVE_IN_ROOT = 0x02, 0x10
SYS_OPENAT2 = 437  # the unified system call table: the same number on every architecture
RETRIES = 1000  # EAGAIN: a rename or mount elsewhere raced the ``..`` check; the kernel asks to retry
_libc = ctypes.CDLL(None, use_errno=True)


def libc() -> ctypes.CDLL:
    return _libc


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def open_in_root(rootfd: int, path: str, flags: int, mode: int = 0) -> int:
    """``path`` (absolute or not: either way inside the root) opened with ``flags``; OSError as
    open(2) would raise it (ENOENT, ELOOP with O_NOFOLLOW on a link, ENOSYS before Linux 5.6)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    encoded = (path.lstrip("/") or ".").encode()
    err = 0
    for _ in range(RETRIES):
        fd = _libc.syscall(SYS_OPENAT2, rootfd, encoded, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def open_root(pid: int, proc: str = "/proc") -> int:
    """A directory descriptor of process ``pid``'s root (its mount namespace's view)."""
    return os.open(os.path.join(proc, str(pid), "root"), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def opened_if_regular(pathfd: int, flags: int) -> int | None:
    """``pathfd`` (O_PATH, closed here) reopened with ``flags`` when it is a regular file; anything
    else is never opened: a FIFO's open wakes the app's writer, and a device node's open is the
    host's driver's (a watchdog's starts it), whatever device policy confines the app itself. Give
    O_NONBLOCK: a write lease the app holds would stall the open until the kernel breaks it."""
    try:
        if not stat.S_ISREG(os.fstat(pathfd).st_mode):
            return None
        return os.open(f"/proc/self/fd/{pathfd}", flags | os.O_CLOEXEC)  # that very inode
    finally:
        os.close(pathfd)


def read_in_root(rootfd: int, path: str, limit: int = 1 << 20) -> bytes | None:
    """A regular file's first ``limit`` bytes (its /etc/passwd), None when there is none (or a
    FIFO or device node is there: not opened)."""
    try:
        fd = opened_if_regular(
            open_in_root(rootfd, path, os.O_PATH), os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK
        )
    except OSError:
        return None
    if fd is None:
        return None
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)
