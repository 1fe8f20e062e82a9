"""Threads that share one layer's work (issue #26): a thread per step, joined by bounded pipes of
chunks. zlib, hashlib and file writes release the GIL for large buffers, so on two cores one big
layer streams at about the pace of its slowest step rather than the sum of them all.

Threads belong to lines. A line fails as a whole: the first error is kept, and every thread of
the line stops at its next put or get, so a digest mismatch found by a hash thread stops the
extraction at its next chunk. A pipe between two lines (the download feeding the inflation)
stops its writer when the writer's line fails and turns the writer's puts into no-ops when the
reader's line fails: the download goes on, for the blob's digest, after the extraction stopped.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

DEPTH = 4  # chunks of 1 MiB waiting in a pipe: enough to ride out a step's hiccup


class Stopped(Exception):
    """Raised in a thread whose line failed elsewhere; the line's own error is what is told."""


class Line:
    """Threads that stop together. Every line of one layer shares ``lock``."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock
        self.error: BaseException | None = None
        self._waiters: list[threading.Condition] = []
        self._threads: list[threading.Thread] = []

    def watched_by(self, condition: threading.Condition) -> None:
        self._waiters.append(condition)

    def fail(self, error: BaseException) -> None:
        """Keep ``error`` unless the line failed already, and wake every waiter."""
        with self.lock:
            if self.error is None:
                self.error = error
            for condition in self._waiters:
                condition.notify_all()

    def start(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Stopped:
                pass
            except BaseException as error:  # told by whoever joins the line
                self.fail(error)

        thread = threading.Thread(target=run, name=f"nspod-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait(self) -> BaseException | None:
        """Wait for the line's threads; the error it failed with, if any."""
        for thread in self._threads:
            thread.join()
        return self.error

    def stop(self) -> None:
        """Fail the line (a caller leaving early) and wait for its threads."""
        self.fail(Stopped())
        self.wait()


class Pipe:
    """Chunks from a thread of ``writer`` to one of ``reader``, at most ``depth`` waiting. b""
    ends the stream; an exception put in it is raised by the reader where it reads it."""

    def __init__(self, writer: Line, reader: Line, depth: int = DEPTH) -> None:
        self._writer, self._reader, self._depth = writer, reader, depth
        self._chunks: deque[bytes | BaseException] = deque()
        self._changed = threading.Condition(writer.lock)
        writer.watched_by(self._changed)
        if reader is not writer:
            reader.watched_by(self._changed)

    def put(self, chunk: bytes | BaseException) -> None:
        with self._changed:
            while (
                len(self._chunks) >= self._depth
                and self._writer.error is None
                and self._reader.error is None
            ):
                self._changed.wait()
            if self._writer.error is not None:
                raise Stopped
            if self._reader.error is None:  # else no one reads: dropped
                self._chunks.append(chunk)
                self._changed.notify_all()

    def offer(self, chunk: bytes) -> bool:
        """Put ``chunk`` if there is room now; False, and nothing put, if the pipe is full."""
        with self._changed:
            if self._writer.error is not None:
                raise Stopped
            if len(self._chunks) >= self._depth:
                return False
            if self._reader.error is None:
                self._chunks.append(chunk)
                self._changed.notify_all()
            return True

    def get(self) -> bytes | BaseException:
        with self._changed:
            while not self._chunks and self._reader.error is None:
                self._changed.wait()
            if self._reader.error is not None:
                raise Stopped
            chunk = self._chunks.popleft()
            self._changed.notify_all()
            return chunk


class Chunks:
    """A Readable over an iterator of byte strings (an HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer, self._at = b"", 0  # an offset: slicing off the rest would copy it every read

    def read(self, size: int = -1, /) -> bytes:
        while self._at >= len(self._buffer):
            try:
                self._buffer, self._at = next(self._chunks), 0
            except StopIteration:
                return b""
        if self._at == 0 and (size < 0 or size >= len(self._buffer)):
            self._at = len(self._buffer)
            return self._buffer
        end = len(self._buffer) if size < 0 else min(len(self._buffer), self._at + size)
        data, self._at = self._buffer[self._at : end], end
        return data


def _chunks_of(pipe: Pipe) -> Iterator[bytes]:
    """A pipe's chunks to its end; an exception that came down it is raised."""
    while True:
        chunk = pipe.get()
        if isinstance(chunk, BaseException):
            raise chunk
        if not chunk:
            return
        yield chunk


def pipe_reader(pipe: Pipe) -> Chunks:
    """A Readable over a pipe: whole chunks, or parts of one for a smaller read."""
    return Chunks(_chunks_of(pipe))


class Summed:
    """A hash over what a pipe carries, to its end. ``complete`` is False when the stream broke
    off (an exception came down the pipe instead of its end): then the sum says nothing."""

    def __init__(self, pipe: Pipe, algorithm: str) -> None:
        self._pipe, self.hash = pipe, hashlib.new(algorithm)
        self.size, self.complete = 0, False

    def run(self) -> None:
        while True:
            chunk = self._pipe.get()
            if isinstance(chunk, BaseException):
                return
            if not chunk:
                self.complete = True
                return
            self.hash.update(chunk)
            self.size += len(chunk)

    def matches(self, expected: str) -> bool:
        """``expected`` is algorithm:hex, as a digest or a diff ID is written."""
        return self.complete and f"{self.hash.name}:{self.hash.hexdigest()}" == expected


def fan_out(read: Callable[[int], bytes], size: int, pipes: tuple[Pipe, ...]) -> None:
    """Every chunk of ``read`` down every pipe, then the end; an error of ``read`` goes down
    them instead of the end, to be raised where the readers meet it."""
    try:
        while chunk := read(size):
            for pipe in pipes:
                pipe.put(chunk)
    except Stopped:
        raise
    except Exception as error:  # handed on down the pipes, not swallowed
        for pipe in pipes:
            pipe.put(error)
        return
    for pipe in pipes:
        pipe.put(b"")
