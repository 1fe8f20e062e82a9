"""The copy of a blob kept for resuming (stage0/images/oci/kept.py): written past the page cache by
a thread of its own, byte for byte whatever the chunks' sizes; resumed from an aligned offset; a
failed write raised where the download meets it; and a pull from a registry that resumes from a
kept copy, or leaves one when the transfer breaks off."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.images.oci import kept
from stage0.images.oci.kept import ALIGN, BUFFER, KeptCopy, resume_offset
from stage0.images.oci.manifest import Descriptor
from stage0.images.oci.pull import Progress, _layer
from stage0.images.store.store import Store
from tests.unit.test_layer_pipeline import no_pipeline_threads

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_every_byte_is_kept_whatever_the_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "DEPTH", 1000)  # written in a burst, faster than a disk: all waits
    data = os.urandom(3 * BUFFER + 12345)
    sizes = [1, ALIGN - 1, BUFFER, 5000, BUFFER + 7, 3 * ALIGN]
    copy, at = KeptCopy(str(tmp_path / "part"), 0), 0
    for size in sizes * 2:
        copy.write(data[at : at + size])
        at += size
    copy.write(data[at:])
    copy.close()
    assert (tmp_path / "part").read_bytes() == data
    assert no_pipeline_threads()


def test_a_copy_goes_on_from_an_aligned_offset(tmp_path: Path) -> None:
    part = tmp_path / "part"
    assert resume_offset(str(part)) == 0
    data = os.urandom(2 * ALIGN + 100)
    part.write_bytes(data)
    assert resume_offset(str(part)) == 2 * ALIGN  # what was kept past it is cut off
    assert part.read_bytes() == data[: 2 * ALIGN]
    copy = KeptCopy(str(part), 2 * ALIGN)
    copy.write(data[2 * ALIGN :])
    copy.close()
    assert part.read_bytes() == data
    fresh = KeptCopy(str(part), 0)  # from the start: what was there goes
    fresh.write(b"new")
    fresh.close()
    assert part.read_bytes() == b"new"


def test_a_failed_write_is_raised_where_the_download_meets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    copy = KeptCopy(str(tmp_path / "part"), 0)
    with pytest.raises(OSError, match="No space"):  # by a later write, or else by close
        for _ in range(10):
            copy.write(b"x" * BUFFER)
        copy.close()
    copy.close()  # once is enough
    assert no_pipeline_threads()


def test_a_device_refusing_the_alignment_gets_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write, refused = os.write, list[int]()

    def picky(fd: int, data: memoryview) -> int:
        if not refused:
            refused.append(fd)
            raise OSError(errno.EINVAL, "Invalid argument")
        return write(fd, data)

    monkeypatch.setattr(os, "write", picky)
    data = os.urandom(2 * BUFFER + 5)
    copy = KeptCopy(str(tmp_path / "part"), 0)
    copy.write(data)
    copy.close()
    assert refused and (tmp_path / "part").read_bytes() == data


def test_a_disk_behind_the_network_never_holds_the_pull_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write

    def slow(fd: int, data: memoryview) -> int:
        time.sleep(0.1)
        return write(fd, data)

    monkeypatch.setattr(os, "write", slow)
    data = os.urandom(30 * BUFFER)
    copy = KeptCopy(str(tmp_path / "part"), 0)
    start = time.monotonic()
    for at in range(0, len(data), BUFFER):
        copy.write(data[at : at + BUFFER])
    assert time.monotonic() - start < 1.0 and copy.behind  # 30 writes of the disk take 3 s
    copy.close()
    kept = (tmp_path / "part").read_bytes()
    assert 0 < len(kept) < len(data) and kept == data[: len(kept)]  # a prefix: resumable


def test_a_discarded_copy_stops_at_the_write_under_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write

    def slow(fd: int, data: memoryview) -> int:
        time.sleep(0.1)
        return write(fd, data)

    monkeypatch.setattr(os, "write", slow)
    data = os.urandom(8 * BUFFER)
    copy = KeptCopy(str(tmp_path / "part"), 0)
    for at in range(0, len(data), BUFFER):
        copy.write(data[at : at + BUFFER])
    start = time.monotonic()
    copy.discard()
    copy.close()  # nothing more
    assert time.monotonic() - start < 0.5  # not the 0.8 s of all eight
    kept = (tmp_path / "part").read_bytes()
    assert len(kept) < len(data) and kept == data[: len(kept)]
    assert no_pipeline_threads()


class Blob:
    def __init__(self, data: bytes, status: int, pause: threading.Event | None = None) -> None:
        self.data, self.status, self.pause = data, status, pause

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        for at in range(0, len(self.data), size):
            if self.pause is not None and at >= len(self.data) // 2:
                self.pause.wait(10)  # the test looks at the kept copy meanwhile
            yield self.data[at : at + size]

    def close(self) -> None:
        pass


def big_layer() -> tuple[bytes, bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        payload = os.urandom(5 << 20)  # random: gzip stores it, the blob is as large
        info = tarfile.TarInfo("payload")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue(), gzip.compress(buffer.getvalue())


def test_a_pull_keeps_what_streamed_and_resumes_from_an_aligned_offset(tmp_path: Path) -> None:
    tar, blob = big_layer()
    asked: list[int] = []
    pause = threading.Event()

    class Registry:
        remote = True

        def blob(self, digest: str, offset: int = 0) -> Blob:
            asked.append(offset)
            return Blob(blob[offset:], 206 if offset else 200, None if offset else pause)

    layer = Descriptor(GZIP_LAYER, sha256(blob), len(blob))
    with Store.open(str(tmp_path / "data")) as store:
        part = Path(store.paths.downloads, layer.digest.replace(":", "-") + ".part")
        pull = threading.Thread(
            target=_layer, args=(store, Registry(), layer, sha256(tar), Progress("x", len(blob), None))
        )
        pull.start()
        try:  # halfway, what a kill -9 would leave: a prefix of the blob, in whole buffers
            deadline = time.monotonic() + 5
            while (part.stat().st_size if part.exists() else 0) < 2 * BUFFER:
                assert time.monotonic() < deadline, "nothing kept while the blob streams"
                time.sleep(0.01)
            assert part.read_bytes() == blob[: part.stat().st_size]
        finally:
            pause.set()
            pull.join()
        assert not part.exists() and asked == [0]
        stored = Path(store.paths.oci_layer(sha256(tar)), "payload").read_bytes()
        assert stored == tar[512 : 512 + (5 << 20)]

    # a copy cut anywhere (a killed pull) resumes from an aligned offset, and the blob checks out
    tar2, blob2 = big_layer()
    blob, asked[:] = blob2, []
    layer = Descriptor(GZIP_LAYER, sha256(blob), len(blob))
    with Store.open(str(tmp_path / "data2")) as store:
        part = Path(store.paths.downloads, layer.digest.replace(":", "-") + ".part")
        part.write_bytes(blob[: len(blob) // 2 + 100])
        pause.set()
        _layer(store, Registry(), layer, sha256(tar2), Progress("x", len(blob), None))  # type: ignore[arg-type]
        assert asked == [(len(blob) // 2 + 100) // ALIGN * ALIGN] and not part.exists()
        assert store.index.layer(sha256(tar2)) is not None
    assert no_pipeline_threads()
