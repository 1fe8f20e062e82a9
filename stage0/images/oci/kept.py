"""The copy of a layer's blob kept while it streams, so that an interrupted pull resumes where it
stopped (stage0/images/oci/pull.py): written by a thread of its own, past the page cache
(O_DIRECT) where the file system allows it.

Why past the page cache: the copy is deleted as soon as the layer is stored, so its pages would
only be filled and freed again, and filling fresh pages is what a pull pays most for here: on a
virtual machine whose free memory goes back to the host (virtio-balloon's free page reporting),
a page touched for the first time costs several times its copy (bench/RESULTS.md, pull). Written
directly, the copy costs one memcpy into a reused buffer, and the disk's time in this thread.

The copy never holds the pull back: when the disk falls behind the network (DEPTH chunks
waiting), keeping stops there and the file stays what it must be, a prefix of the blob. What
survives a kill -9 is such a prefix, up to the last whole buffer written; the next pull resumes
from a multiple of :data:`ALIGN` and checks the whole blob against its digest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading

from stage0.images.oci.pipeline import Line, Pipe, Stopped

ALIGN = 4096  # O_DIRECT's offsets, lengths and addresses: a page covers every device's block
BUFFER = 1 << 20  # a multiple of ALIGN: written whole, so the file's end stays aligned
DEPTH = 8  # chunks waiting for the disk before keeping stops: rides out the disk's hiccups


def resume_offset(path: str) -> int:
    """Where a kept copy can go on from: its size down to :data:`ALIGN` (the file is cut there),
    0 when there is none."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return 0
    aligned = size - size % ALIGN
    if aligned != size:
        os.truncate(path, aligned)
    return aligned


class KeptCopy:
    """Chunks appended to ``path`` (at ``offset``, a multiple of ALIGN) as a thread writes them,
    until the disk is ``behind``; an error of the writing thread is raised once: by the next
    ``write``, or else by ``close``, which writes what is queued and waits."""

    def __init__(self, path: str, offset: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if offset else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o666)
        self._direct = _set_direct(self._fd, True)
        self._line = Line(threading.Lock())
        self._pipe = Pipe(self._line, self._line, DEPTH)
        self._closed = self._told = self.behind = False
        self._line.start("kept-copy", self._run)

    def write(self, data: bytes) -> None:
        """Queue ``data``; once the disk is behind, nothing more (the file stays a prefix)."""
        if self.behind:
            return
        try:
            self.behind = not self._pipe.offer(data)
        except Stopped:
            self._told = True
            raise self._line.error or OSError("the kept copy stopped") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with contextlib.suppress(Stopped):  # the thread failed: its error is raised below
                self._pipe.put(b"")
            if (error := self._line.wait()) is not None and not self._told:
                raise error
        finally:
            os.close(self._fd)

    def discard(self) -> None:
        """Stop at the write under way, dropping what is queued: the copy is about to be deleted
        (its layer stored, or refused), so the rest is not worth the disk's time."""
        if self._closed:
            return
        self._closed = True
        try:
            self._line.stop()
        finally:
            os.close(self._fd)

    def _run(self) -> None:
        buffer = mmap.mmap(-1, BUFFER)  # page-aligned, as O_DIRECT wants; reused for every chunk
        view, fill = memoryview(buffer), 0  # freed with this frame (closing it could mask an error)
        while chunk := self._pipe.get():
            if isinstance(chunk, BaseException):  # never put here; for the type
                raise chunk
            data = memoryview(chunk)
            while data:
                count = min(len(data), BUFFER - fill)
                view[fill : fill + count] = data[:count]
                fill, data = fill + count, data[count:]
                if fill == BUFFER:
                    self._write(view)
                    fill = 0
        if fill:  # the tail, of any length: through the page cache
            _set_direct(self._fd, False)
            self._direct = False
            self._write(view[:fill])

    def _write(self, data: memoryview) -> None:
        while data:
            try:
                written = os.write(self._fd, data)
            except OSError as error:
                if error.errno != errno.EINVAL or not self._direct:
                    raise
                _set_direct(self._fd, False)  # a device that wants more than ALIGN: the page cache
                self._direct = False
                continue
            data = data[written:]
            if data and self._direct:  # a short write leaves the rest unaligned
                _set_direct(self._fd, False)
                self._direct = False


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off; False where the file system refuses it (tmpfs on older kernels)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_DIRECT if on else flags & ~os.O_DIRECT)
    except OSError:
        return False
    return on
