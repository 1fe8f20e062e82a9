"""The user namespace allocator (stage0/pods/userns.py): disjoint ranges under a lock, subordinate IDs
skipped, a recorded range per pod, and a clear error on kernels without ID-mapped overlay layers."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage0.pods.userns import FIRST, UsernsError, allocate, check_kernel, free_range, taken
from stage1.abi import USERNS_SIZE


def pod(root: Path, state: str, uuid: str) -> Path:
    path = root / state / uuid
    path.mkdir(parents=True)
    return path


def test_ranges_follow_one_another(tmp_path: Path) -> None:
    first = allocate(str(tmp_path), str(pod(tmp_path, "run", "a")), subid_files=())
    second = allocate(str(tmp_path), str(pod(tmp_path, "prepared", "b")), subid_files=())
    assert (first, second) == (FIRST, FIRST + USERNS_SIZE)
    assert (tmp_path / "run/a/userns").read_text() == f"{FIRST} {USERNS_SIZE}\n"


def test_a_removed_pod_frees_its_range(tmp_path: Path) -> None:
    a = pod(tmp_path, "run", "a")
    allocate(str(tmp_path), str(a), subid_files=())
    (a / "userns").unlink()
    assert allocate(str(tmp_path), str(pod(tmp_path, "run", "b")), subid_files=()) == FIRST


def test_subordinate_ids_are_skipped(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text(f"alice:{FIRST + 100}:65536\nbroken line\n")
    ranges = taken(str(tmp_path / "pods"), (str(subuid), str(tmp_path / "missing")))
    assert ranges == [(FIRST + 100, 65536)]
    assert free_range(ranges) == FIRST + 2 * USERNS_SIZE


def test_no_range_left_is_an_error() -> None:
    with pytest.raises(UsernsError, match="no free range"):
        free_range([(0, 0x7FFFFFFF)])


@pytest.mark.parametrize("release", ["5.10.0-23-amd64", "4.19.0", "weird"])
def test_old_kernels_are_refused_with_a_clear_error(release: str) -> None:
    with pytest.raises(UsernsError, match=f"needs Linux 5.19 or later .*; this is {release}"):
        check_kernel(release)


def test_new_kernels_pass() -> None:
    check_kernel("6.1.0-18-amd64")
    check_kernel("5.19.0")
