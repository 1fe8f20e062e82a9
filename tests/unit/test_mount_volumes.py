"""stage1/scripts/mount_volumes.py (issue #23, item 1): a volume's target resolves inside the app's
root whatever links its tree holds; made where missing, never outside. No mount here (that needs
root): what the target's fd resolves to is checked (tests/attacks/test_mount_links.py mounts)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from stage1.abi import AppSpec
from stage1.volumes import has_volumes_unit, mount_order, volumes_unit
from tests.conftest import REPO


def helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mount_volumes", REPO / "stage1/scripts/mount_volumes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MV = helper()


def resolved(root: Path, target: str, directory: bool = True) -> str:
    """Where ``target`` lands inside ``root`` (made where missing)."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = MV.open_target(rootfd, str(root), target, directory)
    finally:
        os.close(rootfd)
    try:
        return str(MV.where(fd, str(root)))
    finally:
        os.close(fd)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """An app's root beside the pod's tree (``outside``), whose /nspod/bin a link might aim at."""
    outside = tmp_path / "pod"
    (outside / "nspod/bin").mkdir(parents=True)
    root = outside / "opt/stage2/app/rootfs"
    (root / "usr/bin").mkdir(parents=True)
    return root, outside


LINKS = {  # link in the app's root → target given → where it must land, inside the root
    "absolute": ({"data": "/nspod/bin"}, "/data", "/nspod/bin"),
    "relative-dotdot": ({"data": "../../../../nspod/bin"}, "/data", "/nspod/bin"),
    "parent": ({"a": "/nspod"}, "/a/bin", "/nspod/bin"),
    "chain": ({"a": "b", "b": "/c", "c": "../../../d"}, "/a/x", "/d/x"),
    "dotdot-in-path": ({}, "/usr/../../../../nspod/bin", "/nspod/bin"),
    "dotdot-after-missing": ({}, "/missing/../../../x", "/x"),
    "dangling": ({"data": "/gone/deeper"}, "/data", "/gone/deeper"),
    "existing": ({}, "/usr/bin", "/usr/bin"),
    "to-root": ({"data": "/"}, "/data", ""),
    "to-proc": ({"data": "/proc/self"}, "/data", "/proc/self"),
}


@pytest.mark.parametrize("case", sorted(LINKS))
def test_targets_resolve_inside_the_apps_root(tree: tuple[Path, Path], case: str) -> None:
    root, outside = tree
    links, target, expected = LINKS[case]
    for link, points in links.items():
        os.symlink(points, root / link)
    assert resolved(root, target) == expected
    assert os.listdir(outside / "nspod/bin") == []  # nothing made outside


def test_a_file_volume_gets_a_file(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.symlink("/etc/conf", root / "conf")
    assert resolved(root, "/conf", directory=False) == "/etc/conf"
    assert (root / "etc/conf").is_file() and not (root / "etc/conf").is_symlink()


def test_link_loops_are_refused(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.symlink("b", root / "a")
    os.symlink("a", root / "b")
    with pytest.raises((MV.Refused, OSError)):
        resolved(root, "/a/x")


def test_the_root_and_kernel_files_are_refused_as_targets(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / "proc").mkdir()
    os.symlink("/", root / "top")
    for target in ("/top", "/proc/x", "/..", "/"):
        with pytest.raises(MV.Refused):
            MV.mount_volume(str(root), str(root / "usr"), target)


def test_outer_mounts_go_first() -> None:
    app = AppSpec(name="a", rootfs="/r", exec=("/x",),
                  mounts=(("v", "/data/logs", False), ("w", "/data", False), ("u", "/b", True)))  # fmt: skip
    assert mount_order(app) == [(1, "/data"), (2, "/b"), (0, "/data/logs")]
    exec_start = next(v for _, k, v in volumes_unit(app) if k == "ExecStart")
    staged = "/opt/stage2/a/volumes"
    assert exec_start.split()[2:] == [
        f"{staged}/1",
        "/data",
        f"{staged}/2",
        "/b",
        f"{staged}/0",
        "/data/logs",
    ]


class FakeLibc:
    """Records what each mount would cover (the fd's path, and whether it is a link) instead of
    mounting (which needs root)."""

    def __init__(self) -> None:
        self.covered: list[tuple[str, bytes | None, bool]] = []
        self.syscall = MV._libc.syscall  # openat2 is the real one

    def mount(self, source: bytes, target: bytes, kind: bytes | None, flags: int, data: bytes | None) -> int:
        held = target.decode()
        self.covered.append((os.readlink(held), kind, os.path.islink(os.readlink(held))))
        return 0


def masked(root: Path, target: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bytes | None, bool]]:
    libc = FakeLibc()
    monkeypatch.setattr(MV, "_libc", libc)
    MV.mask(str(root), target)
    return libc.covered


def test_a_masked_link_is_covered_itself_not_its_target(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = tree
    (root / "bin").mkdir()
    (root / "bin/busybox").write_text("")
    (root / "bin/ls").symlink_to("busybox")
    assert masked(root, "/bin/ls", monkeypatch) == [(f"{root}/bin/ls", None, True)]  # a /dev/null bind
    assert masked(root, "/usr", monkeypatch) == [(f"{root}/usr", b"tmpfs", False)]  # a directory


def test_a_masked_path_resolves_inside_the_root(
    tree: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = tree
    (root / "data").symlink_to("/nspod")  # the pod's /nspod would be outside: the root's is meant
    (root / "nspod").mkdir()
    (root / "nspod/bin").write_text("")
    assert masked(root, "/data/bin", monkeypatch) == [(f"{root}/nspod/bin", None, False)]
    assert masked(root, "/missing/file", monkeypatch) == [] and masked(root, "/data/gone", monkeypatch) == []
    for bad in ("/", "/usr/../bin", "/proc/x"):
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc/x").write_text("")
        with pytest.raises(MV.Refused):
            masked(root, bad, monkeypatch)
    assert (outside / "nspod/bin").is_dir()


def test_masks_follow_the_volumes() -> None:
    app = AppSpec(name="a", rootfs="/r", exec=("/x",), mounts=(("v", "/data", False),),
                  masked_paths=("/bin/ls", "/proc/kcore", "/dev/x"))  # fmt: skip
    exec_start = next(v for _, k, v in volumes_unit(app) if k == "ExecStart")
    assert exec_start.split()[2:] == ["/opt/stage2/a/volumes/0", "/data", "--mask", "/bin/ls"]
    privileged = AppSpec(name="a", rootfs="/r", exec=("/x",), masked_paths=("/bin/ls",), privileged=True)
    assert not has_volumes_unit(privileged)
    assert has_volumes_unit(dataclasses.replace(privileged, privileged=False))
