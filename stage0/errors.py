"""nspod's error hierarchy. Every expected failure is one of these, caught once in ``cli.main()``::

    Error (stage1.abi)                   one-line message + hint, exit 254
    ├── NotFoundError, ConflictError, …  one per ErrorKind, where no class of its own says more
    ├── UsageError                       the command line itself is wrong (exit 2)
    ├── InputError                       a file or directory named by the user is missing or unreadable
    ├── SchemaError                      a manifest breaks the appc schema; names the field (JSON pointer)
    ├── ImageError                       an ACI or image layout is malformed
    │   └── ImageExistsError             refusing to overwrite an existing output
    └── DiskFull                         no space left where nspod writes (never reported as damage)

Anything else that escapes is a bug: ``main()`` reports it as an internal error.

Every error has a kind (:class:`ErrorKind`, the class attribute ``kind``; :func:`kind_of` reads it,
stage1's errors spell theirs as plain strings since stage1 never imports stage0). Front ends map
kinds, never classes: :data:`EXIT_CODES` here for the command line, stage0/cri/status.py for gRPC.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
from collections.abc import Iterator, Mapping

from stage1.abi import Error, ExitCode

__all__ = [
    "EXIT_CODES",
    "ConflictError",
    "DiskFull",
    "Error",
    "ErrorKind",
    "ExitCode",
    "FailedPreconditionError",
    "ImageError",
    "ImageExistsError",
    "InputError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "SchemaError",
    "UnavailableError",
    "UsageError",
    "kind_of",
]


class ErrorKind(enum.StrEnum):
    """What kind of failure an error is, whoever reports it (gRPC's codes name the same ideas)."""

    USAGE = "usage"  # the command line itself is wrong (a front end's own; gRPC: invalid argument)
    INVALID_ARGUMENT = "invalid-argument"  # what was asked for is malformed, whatever the state
    NOT_FOUND = "not-found"  # a pod, app, image, key or file named does not exist
    CONFLICT = "conflict"  # it exists already, or another process changed it meanwhile
    FAILED_PRECONDITION = "failed-precondition"  # not in a state that allows it (a running pod…)
    UNAVAILABLE = "unavailable"  # the host or a server failed or was not reachable; may pass
    PERMISSION_DENIED = "permission-denied"  # not allowed: an unverified signature, no rights
    DEADLINE_EXCEEDED = "deadline-exceeded"  # it did not end within the time it was given
    RESOURCE_EXHAUSTED = "resource-exhausted"  # out of disk space (or another resource)
    INTERNAL = "internal"  # nspod's own failure (damage, a bug)


# the one table from kind to exit status: 2 for usage, 254 for everything nspod itself failed at
EXIT_CODES: Mapping[ErrorKind, ExitCode] = {
    kind: ExitCode.USAGE if kind is ErrorKind.USAGE else ExitCode.FAILURE for kind in ErrorKind
}


def kind_of(error: BaseException) -> ErrorKind:
    """The error's kind: its class's ``kind``; an Error that names none failed in a way nspod
    cannot tell apart (INTERNAL), as does anything that is not an Error."""
    if not isinstance(error, Error):
        return ErrorKind.INTERNAL
    try:
        return ErrorKind(getattr(error, "kind", ErrorKind.INTERNAL))
    except ValueError:
        return ErrorKind.INTERNAL


# an error of one kind, where no class of its own says more (raise one of these, never Error)
class NotFoundError(Error):
    kind = ErrorKind.NOT_FOUND


class ConflictError(Error):
    kind = ErrorKind.CONFLICT


class InvalidArgumentError(Error):
    kind = ErrorKind.INVALID_ARGUMENT


class FailedPreconditionError(Error):
    kind = ErrorKind.FAILED_PRECONDITION


class UnavailableError(Error):
    kind = ErrorKind.UNAVAILABLE


class PermissionDeniedError(Error):
    kind = ErrorKind.PERMISSION_DENIED


class InternalError(Error):
    kind = ErrorKind.INTERNAL


class UsageError(Error):
    kind = ErrorKind.USAGE
    hint = "see 'nspod --help'"


class InputError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "check the path and its permissions"


class SchemaError(Error):
    """A manifest violates the appc schema at ``pointer`` (RFC 6901, "" is the document)."""

    kind = ErrorKind.INVALID_ARGUMENT
    hint = "fix the field named above; the appc 0.8.11 schema is described in stage0/schema/README.md"

    def __init__(self, pointer: str, problem: str, *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        field = pointer or "/"
        super().__init__(f"{where}{field}: {problem}")
        self.pointer = pointer
        self.problem = problem
        self.source = source

    def at(self, source: str) -> SchemaError:
        """The same error, naming the file (or archive member) it came from."""
        return SchemaError(self.pointer, self.problem, source=source)


class ImageError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "an ACI is a tar of 'manifest' and 'rootfs/'; check it with 'nspod image validate'"


class ImageExistsError(ImageError):
    kind = ErrorKind.CONFLICT
    hint = "pass --overwrite to replace it"


class DiskFull(Error):
    kind = ErrorKind.RESOURCE_EXHAUSTED
    hint = "free space there ('nspod image gc' and 'nspod gc' remove what is unused) and try again"


def disk_full(directory: str) -> DiskFull:
    """The one report of a full file system (ENOSPC, a quota, SQLite's "database or disk is full"),
    so it is never taken for damage: where, and how much is left."""
    free = free_bytes(directory)
    return DiskFull(f"no space left on {directory}" + (f" ({free} bytes free)" if free is not None else ""))


def free_bytes(directory: str) -> int | None:
    """What an unprivileged writer may still write there (None: it cannot be told)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def is_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def space_on(directory: str) -> Iterator[None]:
    """Say a full file system as :func:`disk_full` of ``directory``, whatever in the block hit it."""
    try:
        yield
    except OSError as error:
        if not is_full(error):
            raise
        raise disk_full(directory) from None
