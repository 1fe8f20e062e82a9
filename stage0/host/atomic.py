"""Replacing a file whole: readers see the old contents or the new, never part, and writers of
one path at once never collide. Each write goes to a temporary file of its own (a unique name in
the same directory, so the rename stays on one file system), is flushed to disk, then renamed
over the target; a failure anywhere removes the temporary. stage1 has its own copy
(stage1/atomic.py): it never imports stage0."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: str, *, mode: int = 0o644, sync: bool = True) -> Iterator[BinaryIO]:
    """``with atomic_file(path) as file:`` write it; ``path`` is replaced when the block ends well,
    untouched when it raises. ``sync=False`` skips the fsync where a crash loses nothing that
    matters (a pod being made, which gc removes) and the writes are on a start's path."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fchmod(file.fileno(), mode)
            if sync:
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def write_atomic(path: str, data: bytes | str, *, mode: int = 0o644, sync: bool = True) -> None:
    """``path`` replaced by ``data`` (text is UTF-8), with permissions ``mode``."""
    with atomic_file(path, mode=mode, sync=sync) as file:
        file.write(data.encode() if isinstance(data, str) else data)
