"""Whose a forwarded port's claim is (stage1/network.py, #23 item 20): a claim whose pod neither
runs (its nspawn holds the pod's lock) nor is being started (its starter holds ``starting``) is
free, whatever is left of the pod on disk."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from stage1.network import _running


def held(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_claim_is_its_pods_while_a_lock_of_the_pod_is_held(tmp_path: Path) -> None:
    pod = tmp_path / "pods/run/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
    pod.mkdir(parents=True)
    (pod / "lock").touch()
    (pod / "starting").touch()
    assert not _running("0f1e2d3c", str(pod))  # its starter was killed before the pod started
    for name in ("starting", "lock"):  # being started; running
        fd = held(pod / name)
        try:
            assert _running("0f1e2d3c", str(pod))
        finally:
            os.close(fd)
    assert not _running("0f1e2d3c", str(tmp_path / "pods/exited-garbage/gone"))  # moved on
