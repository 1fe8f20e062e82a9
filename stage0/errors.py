"""nspod's error hierarchy. Every expected failure is one of these, caught once in ``cli.main()``::

    Error (stage1.abi)                   one-line message + hint, exit 254
    ├── UsageError                       the command line itself is wrong (exit 2)
    ├── InputError                       a file or directory named by the user is missing or unreadable
    ├── SchemaError                      a manifest breaks the appc schema; names the field (JSON pointer)
    ├── ImageError                       an ACI or image layout is malformed
    │   └── ImageExistsError             refusing to overwrite an existing output
    └── DiskFull                         no space left where nspod writes (never reported as damage)

Anything else that escapes is a bug: ``main()`` reports it as an internal error.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from stage1.abi import Error, ExitCode

__all__ = [
    "DiskFull",
    "Error",
    "ExitCode",
    "ImageError",
    "ImageExistsError",
    "InputError",
    "SchemaError",
    "UsageError",
]


class UsageError(Error):
    hint = "see 'nspod --help'"


class InputError(Error):
    hint = "check the path and its permissions"


class SchemaError(Error):
    """A manifest violates the appc schema at ``pointer`` (RFC 6901, "" is the document)."""

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
    hint = "an ACI is a tar of 'manifest' and 'rootfs/'; check it with 'nspod image validate'"


class ImageExistsError(ImageError):
    hint = "pass --overwrite to replace it"


class DiskFull(Error):
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
