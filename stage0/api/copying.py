"""``cp``: files into and out of a running app's root, as ``podman cp`` copies them, resolved as the
app resolves its own paths (stage0/host/inroot.py): a link in the image — absolute, relative, a
chain of ``..``, a linked parent directory — never leads out of the app's root to the host's.

Each step below the resolved start opens relative to a descriptor already held, and never follows
a link (O_NOFOLLOW): a directory swapped for a link while the copy runs fails the copy, it does not
move it. A file in the app is read or written only once it is known to be a regular file (opened as
O_PATH, checked, then reopened through that descriptor), so a FIFO or device node the app made is
never opened, either way. Modes are kept (the set-user-ID and set-group-ID bits are dropped both
ways); what lands in the app belongs to the app's user, what lands on the host to the caller."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import posixpath
import stat
from dataclasses import dataclass

from stage0.errors import FailedPreconditionError, NotFoundError, UsageError

KEPT_BITS = 0o1777  # permissions and the sticky bit; never set-ID bits across the boundary
CHUNK = 1 << 20
AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW = 0x1000, 0x100
MAX_DEPTH = 256  # directories within directories the app may make a copy out walk down


@dataclass(frozen=True, slots=True)
class Location:
    """One side of ``cp``: a host path (``pod`` empty) or ``POD[:APP]:PATH``."""

    path: str
    pod: str = ""
    app: str | None = None


def parse_location(text: str) -> Location:
    """``POD:PATH``, ``POD:APP:PATH`` or a host path (one that starts with ``/`` or ``.``, or has no
    ``:``). An app's name has no ``/``: ``POD:/a:b`` is the path ``/a:b`` of POD's only app."""
    if text.startswith(("/", ".")) or ":" not in text:
        return Location(text)
    pod, _, rest = text.partition(":")
    app = None
    if not rest.startswith("/") and ":" in rest:
        app, _, rest = rest.partition(":")
    if not pod or not rest or app == "":
        raise UsageError(f"bad location {text!r}", hint="give POD:PATH or POD:APP:PATH, or a host path")
    return Location(rest, pod, app)


def copy_sides(source: str, dest: str) -> tuple[Location, Location]:
    sides = parse_location(source), parse_location(dest)
    if bool(sides[0].pod) == bool(sides[1].pod):
        raise UsageError(
            "one side of cp must be in a pod, the other on the host",
            hint="nspod cp POD[:APP]:PATH HOSTPATH, or nspod cp HOSTPATH POD[:APP]:PATH",
        )
    return sides


def in_root(path: str) -> tuple[str, str]:
    """(the parent directory, the last name) of ``path`` inside the root, lexically tidied; the
    root itself is ("/", ".")."""
    tidy = posixpath.normpath("/" + path.lstrip("/"))
    return (posixpath.dirname(tidy), posixpath.basename(tidy)) if tidy != "/" else ("/", ".")


def _refused(error: OSError, where: str) -> Exception:
    inside = "a path of the app is resolved inside its root, its links too"
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFoundError(f"{where}: no such file or directory in the app", hint=inside)
    if error.errno == errno.EWOULDBLOCK:
        return FailedPreconditionError(
            f"{where}: the app holds a lease on a file there", hint="copy it once the app lets it go"
        )
    if error.errno == errno.ELOOP:
        return FailedPreconditionError(
            f"{where}: a symbolic link was met where none may be followed",
            hint="/proc's links lead nowhere from here; else the app changed the path while it was copied",
        )
    return FailedPreconditionError(f"{where}: {error.strerror}", hint=inside)


# --- out of the app ---


def copy_out(rootfd: int, path: str, dest: str) -> int:
    """Copy ``path`` of the app's root to the host's ``dest`` (into it, when it is a directory);
    how many entries were copied."""
    from stage0.host.inroot import open_in_root

    parent, name = in_root(path)
    try:
        parentfd = open_in_root(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise _refused(error, path) from None
    try:
        if name == ".":
            top = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parentfd)
            os.close(parentfd)
            parentfd, name = top, "."
        try:
            kind = os.stat(name, dir_fd=parentfd, follow_symlinks=False).st_mode
        except OSError as error:
            raise _refused(error, path) from None
        target = _host_target(dest, name if name != "." else "root", stat.S_ISDIR(kind))
        try:
            return _out(parentfd, name, target)
        except OSError as error:
            raise _refused(error, path) from None
    finally:
        os.close(parentfd)


def _host_target(dest: str, name: str, directory: bool) -> str:
    if os.path.isdir(dest):
        return os.path.join(dest, name)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise NotFoundError(f"{dest}: no such directory on the host")
    if directory and os.path.lexists(dest):
        raise FailedPreconditionError(f"{dest} exists and is not a directory: a directory cannot go there")
    return dest


def _out(parentfd: int, name: str, target: str, depth: int = 0) -> int:
    mode = os.stat(name, dir_fd=parentfd, follow_symlinks=False).st_mode
    if stat.S_ISLNK(mode):
        link = os.readlink(name, dir_fd=parentfd)
        if os.path.lexists(target) and not os.path.isdir(target):
            os.unlink(target)
        os.symlink(link, target)
        return 1
    if stat.S_ISDIR(mode):
        if depth >= MAX_DEPTH:  # a descriptor a level: an app's endless tree would exhaust them
            raise FailedPreconditionError(
                f"{target}: the app's tree is more than {MAX_DEPTH} directories deep there",
                hint="copy a directory further down",
            )
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parentfd)
        try:
            os.makedirs(target, mode=0o700, exist_ok=True)
            if os.path.islink(target):  # made here for a link of the same name: never followed
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), target)
            # a name once: a directory the app renames in while it is read may list one twice
            entries = sorted(set(os.listdir(fd)))
            count = 1 + sum(_out(fd, entry, os.path.join(target, entry), depth + 1) for entry in entries)
            os.chmod(target, stat.S_IMODE(os.fstat(fd).st_mode) & KEPT_BITS)
        finally:
            os.close(fd)
        return count
    if not stat.S_ISREG(mode):
        return 0  # a FIFO, socket or device node of the app's: not copied out
    from stage0.host.inroot import opened_if_regular

    pathfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parentfd)
    source = opened_if_regular(pathfd, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    if source is None:  # swapped meanwhile for a FIFO or device node: never opened
        return 0
    try:
        info = os.fstat(source)
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            _pump_sparse(source, out, info.st_size)
            os.fchmod(out, stat.S_IMODE(info.st_mode) & KEPT_BITS)
        finally:
            os.close(out)
    finally:
        os.close(source)
    return 1


def _pump_sparse(source: int, dest: int, size: int) -> None:
    """The app's file's first ``size`` bytes (its size once opened: an app that keeps appending
    does not make the copy endless), its holes left holes (a sparse file of the app's, terabytes
    of nothing, takes no room on the host)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(source, offset, os.SEEK_DATA)
            end = min(os.lseek(source, start, os.SEEK_HOLE), size)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no data after offset
                raise
            break
        while start < end:
            chunk = os.pread(source, min(CHUNK, end - start), start)
            if not chunk:  # truncated meanwhile
                end = size
                break
            view = memoryview(chunk)
            while view:
                written = os.pwrite(dest, view, start)
                view, start = view[written:], start + written
        offset = end
    os.ftruncate(dest, size)


def _pump(source: int, dest: int) -> None:
    while chunk := os.read(source, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dest, view) :]


# --- into the app ---


@dataclass(frozen=True, slots=True)
class Owner:
    uid: int  # host IDs: the app's user as the host sees it (shifted by --private-users)
    gid: int


def chown_held(pathfd: int, uid: int, gid: int) -> None:
    """fchownat(2) of an O_PATH descriptor itself (AT_EMPTY_PATH): a link's owner, by no name."""
    from stage0.host.inroot import libc

    if libc().fchownat(pathfd, b"", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def copy_in(rootfd: int, source: str, path: str, owner: Owner) -> int:
    """Copy the host's ``source`` to ``path`` of the app's root (into it, when that resolves to a
    directory in the root); how many entries were copied."""
    from stage0.host.inroot import open_in_root

    if not os.path.lexists(source):
        raise NotFoundError(f"{source}: no such file or directory on the host")
    name = os.path.basename(os.path.normpath(source))
    try:
        parentfd = open_in_root(rootfd, path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise _refused(error, path) from None
        parent, name = in_root(path)
        try:
            parentfd = open_in_root(rootfd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as again:
            raise _refused(again, parent) from None
    try:
        return _in(source, parentfd, name, owner)
    except OSError as error:
        raise _refused(error, path) from None
    finally:
        os.close(parentfd)


def _existing(parentfd: int, name: str) -> int | None:
    """An O_PATH descriptor of ``name`` itself (a link is not followed), None when there is none."""
    try:
        return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parentfd)
    except FileNotFoundError:
        return None


def _in(source: str, parentfd: int, name: str, owner: Owner) -> int:
    info = os.lstat(source)
    if stat.S_ISDIR(info.st_mode):
        # an existing directory is copied into; a link there fails the O_NOFOLLOW below
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parentfd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parentfd)
        try:
            count = 1 + sum(
                _in(os.path.join(source, entry), fd, entry, owner) for entry in sorted(os.listdir(source))
            )
            os.fchown(fd, owner.uid, owner.gid)
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & KEPT_BITS)
        finally:
            os.close(fd)
        return count
    held = _existing(parentfd, name)
    if held is not None:
        try:
            kind = os.fstat(held).st_mode
            if stat.S_ISLNK(kind) or (not stat.S_ISREG(kind) and not stat.S_ISLNK(info.st_mode)):
                if stat.S_ISDIR(kind):
                    raise FailedPreconditionError(f"{name}: a directory is in the way in the app")
                os.unlink(name, dir_fd=parentfd)  # the link itself (or the app's FIFO) goes, not its target
                os.close(held)
                held = None
        except BaseException:
            if held is not None:
                os.close(held)
            raise
    if stat.S_ISLNK(info.st_mode):
        if held is not None:
            os.close(held)
            os.unlink(name, dir_fd=parentfd)
        os.symlink(os.readlink(source), name, dir_fd=parentfd)
        # by a descriptor of the link made, not its name: the app could put a hard link to another
        # file there meanwhile, and gain that file
        link = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parentfd)
        try:
            if stat.S_ISLNK(os.fstat(link).st_mode):
                chown_held(link, owner.uid, owner.gid)
        finally:
            os.close(link)
        return 1
    if not stat.S_ISREG(info.st_mode):
        return 0  # the host's FIFOs, sockets and device nodes are not copied in
    if held is not None:  # a regular file of the app's: reopened through the checked descriptor
        try:
            # O_NONBLOCK: a lease the app holds on its file fails the open, not stalls it (45 s a file)
            out = os.open(f"/proc/self/fd/{held}", os.O_WRONLY | os.O_TRUNC | os.O_NONBLOCK | os.O_CLOEXEC)
        finally:
            os.close(held)
    else:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600, dir_fd=parentfd)
    try:
        with open(source, "rb") as file:
            _pump(file.fileno(), out)
        os.fchown(out, owner.uid, owner.gid)
        os.fchmod(out, stat.S_IMODE(info.st_mode) & KEPT_BITS)
    finally:
        os.close(out)
    return 1
