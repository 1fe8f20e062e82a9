"""glibc's allocator while layers stream (stage0/images/oci/pull.py): a freed chunk buffer is kept
for the next one instead of being handed back to the kernel and faulted in again.

A layer's threads pass 1 MiB buffers along (stage0/images/oci/pipeline.py), allocated in one
thread and freed in another. By default glibc serves them with mmap at first, then from each
thread's heap, which it shrinks whenever 2 MiB lie free at its top; every shrink is a madvise and
every page used again a fault with a page to clear: ~40 ms of CPU per 100 MB (perf, bench/pull).
With the thresholds raised the heaps keep what the pull used (its buffers in flight, a few MiB a
layer) until it ends; then trimming is back at glibc's default threshold.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # malloc.h
MMAP_ABOVE = 8 << 20  # chunks of 1 MiB come from the heaps, not from mmap
TRIM_ABOVE = 64 << 20  # while pulling: heaps are not shrunk
TRIM_DEFAULT = 128 << 10  # glibc's, put back after the pull


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's mallopt, None elsewhere (musl has none)."""
    try:
        function: Callable[[int, int], int] = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    return function


@contextlib.contextmanager
def buffers_kept() -> Iterator[None]:
    """Freed buffers stay with the process while the block runs (pulls may overlap: the first to
    end puts trimming back, which only costs the other some faults)."""
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE)
    mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE)
    try:
        yield
    finally:
        mallopt(M_TRIM_THRESHOLD, TRIM_DEFAULT)
