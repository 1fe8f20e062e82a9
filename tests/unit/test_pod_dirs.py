"""Pods on disk (stage0/pods/dirs.py): a removal killed halfway leaves no half-deleted pod in any listing
(CI once found three records of pod@booting: each a removal cut off by the unit's stop, with its
spec left and its unit file gone, so no later start of pod@booting recognised it as its own)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from stage0.images.store.locks import locked
from stage0.pods import dirs as podsmod
from stage0.pods.dirs import DirState, Pods, PodState


def _pod_in_run(pods: Pods, unit: str) -> podsmod.Pod:
    with pods.create() as pod:
        for name in ("spec.json", "manifest"):
            (Path(pod.path) / name).write_text('{"machine": "booting"}')
        Path(pod.paths.unit).write_text(unit + "\n")
        moved = pods.move(pod, DirState.RUN)
    return moved


def test_a_removal_cut_off_halfway_lists_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pods = Pods(str(tmp_path))
    pod = _pod_in_run(pods, "pod@booting.service")
    assert pods.of_unit("pod@booting.service") == [pod] and pod.state() is PodState.EXITED

    def killed(path: str) -> None:
        os.unlink(os.path.join(path, "unit"))  # gone first, as the directory order may have it
        raise KeyboardInterrupt  # stands for the SIGTERM that ends the remover here

    monkeypatch.setattr(podsmod, "remove_unmounted", killed)
    with pytest.raises(KeyboardInterrupt):
        pods.remove(pod)
    monkeypatch.undo()
    assert pods.all() == []
    removing = tmp_path / "pods" / podsmod.REMOVING
    # a removal under way holds its lock: gc leaves it alone (#23: the storm's check)
    with locked(str(removing / pod.uuid) + ".lock"):
        pods.sweep_removing()
        assert pod.uuid in os.listdir(removing)
    # its remover is dead (its lock free): gc finishes it at once
    pods.sweep_removing()
    assert os.listdir(removing) == []


def test_a_removal_without_a_lock_file_is_swept_after_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pods = Pods(str(tmp_path))
    removing = tmp_path / "pods" / podsmod.REMOVING
    (removing / "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0/stage1").mkdir(parents=True)  # an older nspod's
    pods.sweep_removing()
    assert os.listdir(removing) == ["0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"]
    monkeypatch.setattr(time, "time", lambda: time.time_ns() / 1e9 + 120)
    pods.sweep_removing()
    assert os.listdir(removing) == []


def test_a_prepare_that_fails_leaves_nothing(tmp_path: Path) -> None:
    pods = Pods(str(tmp_path))
    with pytest.raises(RuntimeError), pods.create():
        raise RuntimeError("fetch failed")
    assert pods.all() == []


def test_removing_a_pod_removed_meanwhile_is_quiet(tmp_path: Path) -> None:
    pods = Pods(str(tmp_path))
    pod = _pod_in_run(pods, "pod@x.service")
    pods.remove(pod)
    pods.remove(pod)
    assert pods.all() == []


def test_a_tree_deeper_than_pythons_stack_is_removed(tmp_path: Path) -> None:
    """An app may make its root's tree as deep as it likes (3,000 levels here): shutil.rmtree
    recurses and gave up (RecursionError, the pod never removed); what it leaves, rm removes."""
    from stage0.images.store.locks import remove_tree

    top = tmp_path / "pod"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):
        os.mkdir("a", dir_fd=fd)
        deeper = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    os.close(fd)
    remove_tree(str(top))
    assert not top.exists()
