"""Hostile archives are refused case by case, and nothing outside the store changes."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from stage0.errors import Error
from stage0.images.aci.tarstream import Limits
from stage0.images.store.store import Store
from tests.unit.hostile import CASES, archive, entry, file

LIMITS = Limits(max_bytes=32 << 20, max_entries=10_000, max_header=1 << 20, max_path=4096)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path below root with its mode, size and content digest."""
    seen: dict[str, tuple[int, int, str]] = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        digest = (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        )
        seen[str(path.relative_to(root))] = (st.st_mode, st.st_size, digest)
    return seen


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_text("precious\n")
    (out / "dir").mkdir()
    return out


def test_corpus_size() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_archive_refused(name: str, tmp_path: Path, outside: Path) -> None:
    make, words = CASES[name]
    aci = tmp_path / "evil.aci"
    aci.write_bytes(make(outside))
    before = snapshot(outside)
    store = Store.open(str(tmp_path / "store"), LIMITS)
    with pytest.raises(Error) as refused:
        store.import_file(str(aci))
    assert words in refused.value.message, refused.value.message
    assert snapshot(outside) == before
    paths = store.paths
    assert store.index.images() == []
    assert os.listdir(paths.blobs) == os.listdir(paths.layers) == os.listdir(paths.tmp) == []
    store.close()


def test_setid_bits_are_kept_only_on_files(tmp_path: Path) -> None:
    aci = tmp_path / "ok.aci"
    aci.write_bytes(
        archive(
            file("rootfs/bin/ping", mode=0o4755),
            entry("rootfs/shared", b"5", mode=0o6775),
            entry("rootfs/dev/null", b"3", devmajor=1, devminor=3, mode=0o4666),
        )
    )
    store = Store.open(str(tmp_path / "store"), LIMITS)
    row = store.import_file(str(aci))
    rootfs = Path(store.paths.layer(row.id)) / "rootfs"
    assert (rootfs / "bin/ping").stat().st_mode & 0o7777 == 0o4755
    assert (rootfs / "shared").stat().st_mode & 0o7777 == 0o2775  # set-gid dir: new files inherit the group
    assert (rootfs / "dev/null").lstat().st_mode & 0o7777 == 0o666  # set-uid on a device means nothing
    store.close()


@pytest.mark.parametrize("compress", [False, True])
def test_garbage_only_ever_raises_our_errors(compress: bool) -> None:
    """Random corruption of a valid archive (and of its gzip stream, whose CRC is checked only at the
    end, after the tar reader saw the garbage) gives an nspod error or a valid image, never a crash."""
    import gzip
    import io
    import random
    import tarfile

    from stage0.images.aci.importer import import_stream

    base = archive(
        file("rootfs/a", b"x" * 3000),
        entry("rootfs/d", tarfile.DIRTYPE),
        file("rootfs/d/" + "n" * 120, b"y"),
        entry("rootfs/l", tarfile.SYMTYPE, linkname="a"),
    )
    data = gzip.compress(base, mtime=0) if compress else base
    rng = random.Random(7)
    for _ in range(1500):
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(10, len(mutated))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(Error):
            import_stream(
                io.BytesIO(bytes(mutated)), blob=None, rootfs=None, limits=Limits(max_bytes=1 << 20)
            )
