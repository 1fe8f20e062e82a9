"""A named network namespace, made the way ``ip netns add`` makes it (so ``ip netns`` lists it,
``ip netns delete`` removes it, and CNI plugins open it by path), in this process: three system
calls instead of two ``ip`` processes (~8 ms of every pod's start).

The namespace is made by a thread of its own: ``unshare(CLONE_NEWNET)`` moves only the calling
thread, which then pins the namespace with a bind mount, brings its loopback up and sets its
sysctls, and ends; the rest of the process never leaves the host's namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading

from stage1.abi import Error

CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 0x1000, 0x4000, 1 << 20, 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# inside the new namespace, no duplicate address detection: the addresses come from IPAM, unique
# by construction, and detection holds a v6 link for ~1.5 s
SYSCTLS = {"net/ipv6/conf/all/accept_dad": "0", "net/ipv6/conf/default/accept_dad": "0"}


class NamespaceError(Error):
    kind = "unavailable"  # stage0/errors.py ErrorKind
    hint = "nspod needs root, and a kernel with network namespaces (CONFIG_NET_NS)"


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise NamespaceError(f"{what}: {os.strerror(code)}")


def _shared_dir(libc: ctypes.CDLL, directory: str) -> None:
    """``directory`` a mount point of its own with shared propagation, as ``ip`` makes it: a
    namespace mounted there later is seen by every mount namespace that sees the directory."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = directory.encode()
    # under the directory's lock (a bind onto itself keeps its inode): two pods starting at once
    # would otherwise both find it no mount point and stack two binds
    lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if libc.mount(b"none", path, b"none", MS_SHARED | MS_REC, None) == 0:
            return
        if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
            _check(-1, f"making {directory} shared")
        _check(libc.mount(path, path, b"none", MS_BIND | MS_REC, None), f"bind-mounting {directory}")
        _check(libc.mount(b"none", path, b"none", MS_SHARED | MS_REC, None), f"making {directory} shared")
    finally:
        os.close(lock)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _in_new_namespace(libc: ctypes.CDLL, path: str, failure: list[BaseException]) -> None:
    try:
        _check(libc.unshare(CLONE_NEWNET), "creating a network namespace")
        own = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        _check(libc.mount(own, path.encode(), b"none", MS_BIND, None), f"mounting the namespace on {path}")
        _loopback_up()  # nspawn leaves a namespace it was handed as it is
        for key, value in SYSCTLS.items():
            with contextlib.suppress(FileNotFoundError), open(f"/proc/sys/{key}", "w") as file:
                file.write(value)  # no IPv6 in this kernel: nothing to set
    except BaseException as error:  # handed to the caller's thread
        failure.append(error)


def create(directory: str, name: str) -> None:
    """Make the namespace ``directory/name``; fails if it exists. Nothing is left on failure."""
    libc = _libc()
    _shared_dir(libc, directory)
    path = os.path.join(directory, name)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError:
        raise NamespaceError(
            f"a network namespace {path} exists already",
            hint=f"if no pod uses it: ip netns delete {name}",
        ) from None
    except OSError as error:
        raise NamespaceError(f"cannot create {path}: {error.strerror}") from None
    failure: list[BaseException] = []
    thread = threading.Thread(target=_in_new_namespace, args=(libc, path, failure), name="netns")
    thread.start()
    thread.join()
    if failure:
        delete(path)
        raise failure[0]


def delete(path: str) -> None:
    """Unmount and remove a namespace's file, as ``ip netns delete`` does; gone already is fine."""
    _libc().umount2(path.encode(), MNT_DETACH)  # not mounted: EINVAL, nothing to do
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
