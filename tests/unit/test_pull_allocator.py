"""glibc's allocator while a pull runs (stage0/images/oci/allocator.py): freed buffers kept during
the block, trimming put back after it even when the block fails, nothing done without mallopt."""

from __future__ import annotations

import pytest

from stage0.images.oci import allocator
from stage0.images.oci.allocator import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, TRIM_DEFAULT, buffers_kept


def test_trimming_is_put_back_after_the_block_even_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def mallopt(option: int, value: int) -> int:
        calls.append((option, value))
        return 1

    monkeypatch.setattr(allocator, "_mallopt", lambda: mallopt)
    with pytest.raises(RuntimeError), buffers_kept():
        assert [option for option, _ in calls] == [M_MMAP_THRESHOLD, M_TRIM_THRESHOLD]
        raise RuntimeError("a layer failed")
    assert calls[-1] == (M_TRIM_THRESHOLD, TRIM_DEFAULT)


def test_without_mallopt_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_mallopt", lambda: None)
    with buffers_kept():
        pass


def test_glibc_takes_the_settings() -> None:
    mallopt = allocator._mallopt()
    assert mallopt is not None  # Debian: glibc
    with buffers_kept():
        assert bytes(3 << 20)  # a buffer from the heap, freed into it
