"""The store's locks under parallel writers (issue #23 item 19): a sweep in the window between a
workspace's lock file appearing and its lock being taken, and key locks whose files are removed."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from stage0.images.store.locks import Workspace, key_locked, sweep, sweep_locks, try_lock, unlock_removing


def test_a_sweep_between_create_and_lock_leaves_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another nspod's sweep runs the moment the lock file appears, before its creator locks it."""
    real_open = os.open
    swept: list[str] = []

    def racing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        if flags & os.O_CREAT and str(path).endswith(".lock") and not swept:
            swept.append(str(path))
            sweep(str(tmp_path))  # what another process would do right now
        return fd

    monkeypatch.setattr(os, "open", racing_open)
    with Workspace(str(tmp_path)) as work:
        monkeypatch.setattr(os, "open", real_open)
        assert swept
        Path(work.path, "blob").write_bytes(b"data")
        assert sweep(str(tmp_path)) == []  # alive: nothing of it is taken
        assert Path(work.path, "blob").read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_a_dead_workspace_and_its_hidden_lock(tmp_path: Path) -> None:
    Path(tmp_path, ".0123.lock").touch()  # killed between creating its lock file and renaming it
    Path(tmp_path, "1-abc").mkdir()
    Path(tmp_path, "1-abc.lock").touch()  # killed while it worked
    Path(tmp_path, "1-abc", "blob").touch()
    assert len(sweep(str(tmp_path))) == 2
    assert list(tmp_path.iterdir()) == []


def _count(path: str, times: int) -> None:
    counter = os.path.join(path, "counter")
    for _ in range(times):
        with key_locked(os.path.join(path, "k.lock")):
            value = int(Path(counter).read_text()) if os.path.exists(counter) else 0
            Path(counter).write_text(str(value + 1))


def test_key_locks_exclude_each_other_and_leave_no_file(tmp_path: Path) -> None:
    """Each holder unlinks the file as it leaves, others waiting on the unlinked one retry: still
    one holder at a time (a lost increment would show it), and no lock file left behind."""
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count, args=(str(tmp_path), 300)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert Path(tmp_path, "counter").read_text() == "1200"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"]


def test_shared_holders_leave_the_file_to_the_last(tmp_path: Path) -> None:
    path = str(tmp_path / "k.lock")
    with key_locked(path, shared=True):
        with key_locked(path, shared=True):
            assert try_lock(path) is None  # held (shared): no one may take or remove it
        assert os.path.exists(path)
    assert not os.path.exists(path)


def test_sweep_locks_keeps_held_ones(tmp_path: Path) -> None:
    Path(tmp_path, "dead.lock").touch()  # its holder was killed
    held = str(tmp_path / "held.lock")
    fd = try_lock(held, create=True)
    assert fd is not None
    sweep_locks(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["held.lock"]
    unlock_removing(fd, held)
    assert list(tmp_path.iterdir()) == []


def test_gc_keeps_a_download_being_written(tmp_path: Path) -> None:
    """image gc removed old partial downloads without the fetch's lock: with a short grace, a
    download that paused went from under the fetch writing it."""
    from stage0.images.catalog import gc
    from stage0.images.store.store import Store

    with Store.open(str(tmp_path)) as store:
        part = Path(store.paths.downloads, "k.part")
        part.write_bytes(b"half")
        lock = str(Path(store.paths.downloads, "k.lock"))
        with key_locked(lock):  # the fetch downloading it (stage0/images/fetch/fetcher.py)
            gc(store, str(tmp_path), grace=0, now=part.stat().st_mtime + 10)
            assert part.exists()
        gc(store, str(tmp_path), grace=0, now=part.stat().st_mtime + 10)
        assert sorted(p.name for p in Path(store.paths.downloads).iterdir()) == []
