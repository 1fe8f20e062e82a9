"""Replacing a file whole: readers see the old contents or the new, never part, and writers of
one path at once never collide. Each write goes to a temporary file of its own (a unique name in
the same directory, so the rename stays on one file system), is flushed to disk, then renamed
over the target; a failure anywhere removes the temporary. stage0 has its own copy
(stage0/host/atomic.py): stage1 never imports stage0, and this is the standard library only."""

from __future__ import annotations

import contextlib
import os
import tempfile


def write_atomic(path: str, data: bytes | str, *, mode: int = 0o644, sync: bool = True) -> None:
    """``path`` replaced by ``data`` (text is UTF-8), with permissions ``mode``. ``sync=False``
    skips the fsync where a crash loses nothing that matters (a pod's tree, written again by
    the next start) and the writes are on a start's path."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
            file.flush()
            os.fchmod(file.fileno(), mode)
            if sync:
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def read_text(path: str) -> str | None:
    """A small status file's text; None where it is not (yet) there or cannot be read."""
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None
