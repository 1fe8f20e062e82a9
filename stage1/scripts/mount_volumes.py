#!/usr/bin/python3
# mount-volumes ROOT [STAGED TARGET]...: bind each volume nspawn (or machined) staged in the pod's
# own tree onto TARGET, a path inside the app's ROOT, resolved the way openat2(RESOLVE_IN_ROOT)
# does (runc's securejoin): every link, absolute or relative, in any component, and every ".."
# stays inside ROOT. The target is held as a file descriptor from resolution to mount, so a tree
# changing meanwhile (an app's writable layer, a volume another app writes) cannot move the mount
# out of ROOT. A target in the app's /proc, /sys or /dev (its kernel interfaces) or ROOT itself is
# refused. After them, each path after --mask is covered as runc masks it (an empty read-only
# tmpfs over a directory, /dev/null over anything else): the path itself, a link too (covered, not
# followed: masking /bin/ls must not hide the /bin/busybox it leads to); a path missing is left.
# mount-volumes --share PID[,PID] SOURCE TARGET [SOURCE TARGET]...: each SOURCE mount (a host
# path's, shared: the CRI's bidirectional propagation) cloned in its peer group, then into the
# mount namespace of each PID in turn (the pod's leader, then the app's main process, as the pod
# numbers it) and onto TARGET inside the last one's root: a peer there too, not the slave copy
# machined's bind and systemd's namespace make of it.
# mount-volumes --enter PID UID GID GROUPS DIR --
# CMD...: CMD run in the mount namespace and root of PID (a privileged app's main process), as
# UID, GID and GROUPS (comma-separated), in DIR: what the app sees, the mounts it made included.
# mount-volumes --unmount DIR: detach every mount below DIR (but DIR), deepest first.
# Runs in the pod (the host's python3 in its /usr), before the app's unit (stage1/volumes.py);
# --share runs on the host too (stage1/nspawn/propagation.py).
from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys

O_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC
RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x04, 0x02, 0x08, 0x10
# the same numbers on every architecture (the unified syscall table)
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_OPENAT2, SYS_SETNS = 428, 429, 437, 308
OPEN_TREE_CLONE, AT_RECURSIVE, AT_EMPTY_PATH = 0x1, 0x8000, 0x1000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH, CLONE_NEWNS = 0x4, 0x40, 0x20000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_BIND, MS_REC, MNT_DETACH, UMOUNT_NOFOLLOW = 0x1000, 0x4000, 2, 8
RETRIES = 1000  # openat2's EAGAIN under a busy host's renames and mounts
MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup
KERNEL_DIRS = ("proc", "sys", "dev")  # systemd mounts the app's own over them (MountAPIVFS=)
_libc = ctypes.CDLL(None, use_errno=True)


class Refused(Exception):
    """A target that cannot be resolved inside the app's root."""


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def openat2(dirfd: int, path: str, resolve: int) -> int:
    how = _OpenHow(O_PATH_FLAGS, 0, resolve)
    for _ in range(RETRIES):
        fd = _libc.syscall(SYS_OPENAT2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        # EAGAIN: a rename or mount anywhere on the host while ".." was resolved, so the kernel
        # could not prove it stayed inside the root (openat2(2): "the caller may choose to retry")
        if err != errno.EAGAIN:
            break
    raise OSError(err, os.strerror(err), path)


def inside(rootfd: int, path: str) -> int:
    return openat2(rootfd, path or ".", RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)


def where(fd: int, root: str) -> str:
    """``fd``'s path inside ``root`` ("" for the root itself); Refused if it is not inside."""
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise Refused(f"resolves to {real}, outside the app's root")
    return real[len(root.rstrip("/")) :]


def open_target(rootfd: int, root: str, target: str, directory: bool, links: int = 0) -> int:
    """An O_PATH fd of ``target`` inside the root, made (directories, then a directory or an empty
    file) where missing, never through a link that was not resolved inside the root."""
    if links > MAX_LINKS:
        raise Refused("too many levels of symbolic links")
    parts = [p for p in target.split("/") if p not in ("", ".")]
    try:
        return inside(rootfd, "/".join(parts))
    except FileNotFoundError:
        pass
    # the longest prefix that exists, resolved inside the root; the rest is made below it
    for cut in range(len(parts) - 1, -1, -1):
        try:
            parent = inside(rootfd, "/".join(parts[:cut]))
            break
        except FileNotFoundError:
            continue
    else:  # pragma: no cover (the root itself exists)
        raise Refused("the app's root is gone")
    rest = parts[cut:]
    try:
        for index, name in enumerate(rest):
            if name == "..":  # beneath a directory made just now: lexical (it holds no links)
                child = inside(rootfd, where(parent, root) + "/..")
            else:
                last = index == len(rest) - 1
                try:
                    if last and not directory:
                        os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW,
                                         0o644, dir_fd=parent))  # fmt: skip
                    else:
                        os.mkdir(name, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass  # made meanwhile, or a dangling link: opened without following, below
                try:
                    child = openat2(parent, name, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
                except OSError as error:
                    if error.errno != errno.ELOOP:
                        raise
                    # a link (dangling when resolution began): follow it inside the root, and go on
                    link = os.readlink(name, dir_fd=parent)
                    base = "" if link.startswith("/") else where(parent, root)
                    os.close(parent)
                    parent = -1
                    return open_target(rootfd, root, "/".join([base, link, *rest[index + 1 :]]),
                                       directory, links + 1)  # fmt: skip
            os.close(parent)
            parent = child
        return parent
    except BaseException:
        if parent >= 0:
            os.close(parent)
        raise


def mount_volume(root: str, staged: str, target: str) -> str:
    """Bind ``staged`` (read-only if its own mount is) at ``target`` inside ``root``; the path
    inside the root it was mounted at."""
    rootfd = os.open(root, O_PATH_FLAGS | os.O_DIRECTORY)
    try:
        fd = open_target(rootfd, root, target, os.path.isdir(staged))
    finally:
        os.close(rootfd)
    try:
        path = where(fd, root)
        if not path or path.split("/")[1] in KERNEL_DIRS:
            raise Refused(f"resolves to {path or '/'}, the app's {'root' if not path else 'kernel files'}")
        # the mount goes onto what the fd holds, whatever its path has become meanwhile
        if _libc.mount(staged.encode(), f"/proc/self/fd/{fd}".encode(), None, MS_BIND | MS_REC, None):
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), target)
        return path
    finally:
        os.close(fd)


def mask(root: str, target: str) -> str | None:
    """Cover ``target`` inside ``root`` (its last component not followed); the path covered, None
    when there is nothing to cover."""
    parts = [p for p in target.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise Refused("a masked path is absolute, without '..'")
    rootfd = os.open(root, O_PATH_FLAGS | os.O_DIRECTORY)
    try:
        parent = inside(rootfd, "/".join(parts[:-1]))
    except FileNotFoundError:
        return None
    finally:
        os.close(rootfd)
    try:
        fd = os.open(parts[-1], O_PATH_FLAGS | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        return None
    finally:
        os.close(parent)
    try:
        path = where(fd, root)
        if not path or path.split("/")[1] in KERNEL_DIRS:
            raise Refused(f"resolves to {path or '/'}, the app's {'root' if not path else 'kernel files'}")
        on = f"/proc/self/fd/{fd}".encode()  # the link itself, when it is one: O_NOFOLLOW held it
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            done = _libc.mount(b"tmpfs", on, b"tmpfs", flags, b"size=0,mode=0755")
        else:
            done = _libc.mount(b"/dev/null", on, None, MS_BIND, None)
        if done:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), target)
        return path
    finally:
        os.close(fd)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)
    return result


def clone_tree(fd: int) -> int:
    """A detached copy of the mount tree at ``fd``, in its peer group (open_tree's clone keeps it)."""
    flags = OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH | os.O_CLOEXEC
    return _check(_libc.syscall(SYS_OPEN_TREE, fd, b"", flags), "open_tree")


def enter_mounts(pid: str) -> None:
    """Into the mount namespace of ``pid``, rooted where it is (its root opened before: setns
    would root us at the namespace's own). This process must have one thread."""
    if not pid.isdigit() or int(pid) <= 1:
        raise Refused(f"{pid!r} is no main process")
    rootfd = os.open(f"/proc/{pid}/root", O_PATH_FLAGS | os.O_DIRECTORY)
    nsfd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.syscall(SYS_SETNS, nsfd, CLONE_NEWNS), "setns")
        os.fchdir(rootfd)
        os.chroot(".")
    finally:
        os.close(nsfd)
        os.close(rootfd)


def share(pids: list[str], trees: list[tuple[int, str]]) -> None:
    """Each detached tree onto its target inside the root of the last of ``pids``, in its mount
    namespace (each entered in turn: a PID of the next is one of the namespace before's /proc)."""
    for pid in pids:
        enter_mounts(pid)
    rootfd = os.open("/", O_PATH_FLAGS | os.O_DIRECTORY)
    try:
        for tree, target in trees:
            fd = open_target(rootfd, "/", target, True)
            try:
                flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
                _check(_libc.syscall(SYS_MOVE_MOUNT, tree, b"", fd, b"", flags), f"move_mount {target}")
            finally:
                os.close(fd)
    finally:
        os.close(rootfd)


def share_main(argv: list[str]) -> int:
    """--share PID[,PID] SOURCE TARGET [SOURCE TARGET]..."""
    pids, pairs = argv[1].split(","), argv[2:]
    trees = []
    for source, target in zip(pairs[::2], pairs[1::2], strict=True):
        fd = os.open(source, O_PATH_FLAGS | os.O_DIRECTORY)
        try:
            trees.append((clone_tree(fd), target))
        finally:
            os.close(fd)
    share(pids, trees)
    return 0


def mounts_below(directory: str) -> list[str]:
    """The mount points below ``directory`` (this mount namespace's), deepest first."""
    prefix = directory.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as file:
        found = {
            line.split()[4].encode().decode("unicode_escape").encode("latin-1").decode()
            for line in file
        }  # fmt: skip
    return sorted((p for p in found if p.startswith(prefix)), key=lambda p: (-p.count("/"), p))


def enter_main(argv: list[str]) -> int:
    """--enter PID UID GID GROUPS DIR -- CMD..."""
    pid, uid, gid, groups, directory, dashes, *command = argv[1:]
    if dashes != "--" or not command:
        raise Refused("usage: --enter PID UID GID GROUPS DIR -- CMD...")
    enter_mounts(pid)
    os.setgroups([int(g) for g in groups.split(",") if g])
    os.setgid(int(gid))
    os.setuid(int(uid))
    os.chdir(directory)
    # found on the app's PATH by hand: os.execvp imports a module, which the app's root lacks
    paths = os.environ.get("PATH", "/usr/bin:/bin").split(":")
    found = [command[0]] if "/" in command[0] else [f"{d}/{command[0]}" for d in paths if d]
    for program in found:
        if os.access(program, os.X_OK):
            os.execv(program, command)
    raise FileNotFoundError(errno.ENOENT, "no such program", command[0])


def main(argv: list[str]) -> int:
    if argv[:1] == ["--enter"]:
        try:
            return enter_main(argv)
        except (Refused, OSError) as error:
            print(f"nspod: cannot enter the app: {error}", file=sys.stderr)
            return 127 if isinstance(error, FileNotFoundError) else 126
    if argv[:1] == ["--share"]:
        try:
            return share_main(argv)
        except (Refused, OSError) as error:
            print(f"nspod: cannot share a volume's mounts with the app: {error}", file=sys.stderr)
            return 1
    if argv[:1] == ["--unmount"]:
        # never through a link (another app sharing a volume may have swapped a directory on the
        # way for one); a mount whose point it renamed or removed meanwhile (".../sub//deleted")
        # no path reaches: what is left goes with DIR itself, detached whole
        for point in mounts_below(argv[1]):
            _libc.umount2(point.encode(), MNT_DETACH | UMOUNT_NOFOLLOW)
        if mounts_below(argv[1]):
            _libc.umount2(argv[1].encode(), MNT_DETACH | UMOUNT_NOFOLLOW)
        return 0
    root, rest = argv[0], argv[1:]
    cut = rest.index("--mask") if "--mask" in rest else len(rest)
    pairs, masked = rest[:cut], rest[cut + 1 :]
    for staged, target in zip(pairs[::2], pairs[1::2], strict=True):
        try:
            path = mount_volume(root, staged, target)
        except (Refused, OSError) as error:
            print(
                f"nspod: cannot mount a volume at {target} in {root}: {error}\n"
                "  hint: a mount point (and every link on its way) must lead to a place inside the"
                " app's root: not the root itself, nor its /proc, /sys or /dev",
                file=sys.stderr,
            )
            return 1
        if path != target:
            print(f"volume mount point {target} is {path} in the app's root", file=sys.stderr)
    for target in masked:
        try:
            mask(root, target)
        except (Refused, OSError) as error:
            print(f"nspod: cannot mask {target} in {root}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
