"""One atomic-write helper per stage: writers of one path at once never collide (each its own
temporary), readers never see part of a file, and a failed write leaves neither a temporary nor
a changed file."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import stage0.host.atomic
import stage1.atomic

WRITERS = [stage0.host.atomic.write_atomic, stage1.atomic.write_atomic]


@pytest.mark.parametrize("write", WRITERS, ids=["stage0", "stage1"])
def test_two_threads_writing_one_path_never_collide(write: Callable[..., None], tmp_path: Path) -> None:
    path = str(tmp_path / "file")
    contents = {name: name.encode() * 4096 for name in ("a", "b")}
    errors: list[BaseException] = []
    seen: set[bytes] = set()
    stop = threading.Event()

    def writer(name: str) -> None:
        try:
            for _ in range(200):
                write(path, contents[name], sync=False)
        except BaseException as error:  # a collision: FileNotFoundError from a rename of a shared temp
            errors.append(error)

    def reader() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(Path(path).read_bytes())

    threads = [threading.Thread(target=writer, args=(name,)) for name in contents]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    assert not errors
    assert seen <= set(contents.values())  # whole files only
    assert Path(path).read_bytes() in contents.values()
    assert os.listdir(tmp_path) == ["file"]  # no temporary left


@pytest.mark.parametrize("write", WRITERS, ids=["stage0", "stage1"])
def test_mode_and_a_failed_write(write: Callable[..., None], tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write(str(path), "token", mode=0o600)
    assert path.read_text() == "token" and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(TypeError):
        write(str(path), 42)  # fails half-way: nothing written
    assert path.read_text() == "token" and os.listdir(tmp_path) == ["secret"]


def test_a_block_that_raises_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), stage0.host.atomic.atomic_file(str(path)) as file:
        file.write(b"new, half")
        raise RuntimeError
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out"]
