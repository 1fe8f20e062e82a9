"""One layer's work on threads (issue #26, stage0/images/oci/pipeline.py): pipes and lines on
their own, then extract_layer's failure paths — a digest mismatch found by the hash thread stops
the extraction and leaves no layer, a stream cut short or broken off says so, no thread outlives
the call."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.images.aci.tarstream import Limits, TarError
from stage0.images.fetch.http import FetchError
from stage0.images.oci import layer as layer_module
from stage0.images.oci.layer import extract_layer
from stage0.images.oci.manifest import Descriptor
from stage0.images.oci.pipeline import Chunks, Line, Pipe, Stopped, Summed, fan_out, pipe_reader
from stage0.images.oci.pull import Progress, _layer
from stage0.images.store.store import Store

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_of(files: int, size: int = 100) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for number in range(files):
            info = tarfile.TarInfo(f"f{number:04}")
            info.size, info.mode = size, 0o644
            tar.addfile(info, io.BytesIO(bytes([number % 256]) * size))
    return buffer.getvalue()


def no_pipeline_threads() -> bool:
    """Whether every thread a pipeline started has ended (a moment's grace for the last ones)."""
    deadline = time.monotonic() + 2
    while any(t.name.startswith("nspod-") for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_pipe_carries_chunks_in_order_and_reads_any_size() -> None:
    line = Line(threading.Lock())
    pipe = Pipe(line, line, depth=2)
    line.start("write", lambda: fan_out(Chunks([b"abc", b"defg", b"h"]).read, 3, (pipe,)))
    reader = pipe_reader(pipe)
    assert [reader.read(2), reader.read(2), reader.read(-1), reader.read(10), reader.read(1)] == [
        b"ab", b"c", b"def", b"g", b"h"
    ]  # fmt: skip
    assert reader.read() == b"" and reader.read() == b""
    assert line.wait() is None


def test_an_error_of_the_source_is_raised_where_each_reader_meets_it() -> None:
    def broken(size: int) -> bytes:
        if broken.calls:  # type: ignore[attr-defined]
            raise FetchError("the transfer broke off")
        broken.calls += 1  # type: ignore[attr-defined]
        return b"first"

    broken.calls = 0  # type: ignore[attr-defined]
    line = Line(threading.Lock())
    one, two = Pipe(line, line), Pipe(line, line)
    fan_out(broken, 5, (one, two))
    reader = pipe_reader(one)
    assert reader.read() == b"first"
    with pytest.raises(FetchError, match="broke off"):
        reader.read()
    assert reader.read() == b""  # the error is told once
    summed = Summed(two, "sha256")
    summed.run()
    assert not summed.complete and not summed.matches(sha256(b"first"))


def test_a_failed_line_wakes_a_writer_on_a_full_pipe_and_a_reader_on_an_empty_one() -> None:
    line = Line(threading.Lock())
    full, empty = Pipe(line, line, depth=1), Pipe(line, line)
    full.put(b"x")
    line.start("writer", lambda: full.put(b"y"))  # blocks: the pipe is full
    line.start("reader", lambda: print(empty.get()))  # blocks: nothing comes
    time.sleep(0.05)
    line.fail(ValueError("elsewhere"))
    assert isinstance(line.wait(), ValueError)  # both threads ended, with Stopped, not an error
    with pytest.raises(Stopped):
        empty.get()


def test_a_reader_whose_line_failed_is_skipped_and_the_writer_goes_on() -> None:
    lock = threading.Lock()
    writer, reader = Line(lock), Line(lock)
    dropped, kept = Pipe(writer, reader, depth=1), Pipe(writer, writer, depth=8)
    reader.fail(TarError("the tar broke"))
    fan_out(Chunks([b"a", b"b", b"c"]).read, 1, (dropped, kept))  # would block at "b" if not dropped
    summed = Summed(kept, "sha256")
    summed.run()
    assert summed.matches(sha256(b"abc")) and summed.size == 3
    with pytest.raises(Stopped):
        dropped.get()


def test_summed_says_nothing_of_a_stream_that_did_not_end() -> None:
    line = Line(threading.Lock())
    pipe = Pipe(line, line)
    pipe.put(b"abc")
    pipe.put(RuntimeError("cut"))
    summed = Summed(pipe, "sha256")
    summed.run()
    assert summed.hash.hexdigest() == hashlib.sha256(b"abc").hexdigest() and not summed.complete


class Slow:
    """The layer writer, a file at a time with a pause: the extraction lags far behind the hash
    threads, as a big layer's does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.added = 0
        real = layer_module.LayerWriter.add

        def add(writer: layer_module.LayerWriter, *args: object) -> None:
            self.added += 1
            time.sleep(0.005)
            real(writer, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(layer_module.LayerWriter, "add", add)


def test_a_digest_mismatch_found_by_the_hash_thread_stops_the_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tar = tar_of(400)
    blob = gzip.compress(tar)
    slow = Slow(monkeypatch)
    start = time.monotonic()
    with pytest.raises(TarError, match="does not match its digest"):
        extract_layer(
            io.BytesIO(blob), compression="gzip", root=str(tmp_path), digest=sha256(blob + b"!"),
            diff_id=sha256(tar), limits=Limits(),
        )  # fmt: skip
    assert slow.added < 100, f"the extraction went on after the mismatch: {slow.added} of 400 files"
    assert time.monotonic() - start < 1.0
    assert no_pipeline_threads()


def test_a_bad_digest_stores_no_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = tar_of(400)
    blob = gzip.compress(tar)
    Slow(monkeypatch)

    class Source:
        remote = False

        def blob(self, digest: str, offset: int = 0) -> Blob:
            return Blob(blob)

    store = Store.open(str(tmp_path / "data"))
    wrong = Descriptor(GZIP_LAYER, sha256(blob + b"!"), len(blob))
    with store, pytest.raises(TarError, match="does not match its digest"):
        _layer(store, Source(), wrong, sha256(tar), Progress("x", len(blob), None))  # type: ignore[arg-type]
    with Store.open(str(tmp_path / "data")) as again:
        assert again.index.layer(sha256(tar)) is None
        assert list(Path(again.paths.oci).iterdir()) == []
        assert list(Path(again.paths.tmp).iterdir()) == []
    assert no_pipeline_threads()


class Blob:
    status = 200

    def __init__(self, data: bytes) -> None:
        self.data = data

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        return (self.data[at : at + size] for at in range(0, len(self.data), size))

    def close(self) -> None:
        pass


def test_a_stream_cut_short_is_refused_for_its_digest(tmp_path: Path) -> None:
    tar = tar_of(50, 4096)
    blob = gzip.compress(tar)
    with pytest.raises(TarError, match="does not match its digest"):
        extract_layer(
            io.BytesIO(blob[: len(blob) // 2]), compression="gzip", root=str(tmp_path),
            digest=sha256(blob), diff_id=sha256(tar), limits=Limits(),
        )  # fmt: skip
    assert no_pipeline_threads()


def test_a_transfer_that_breaks_off_says_so(tmp_path: Path) -> None:
    tar = tar_of(50, 40_000)
    blob = gzip.compress(tar, compresslevel=0)

    def chunks() -> Iterator[bytes]:
        yield blob[: len(blob) // 2]
        raise FetchError("http://registry/blob: the transfer broke off")

    class Broken:
        def __init__(self) -> None:
            self._chunks = chunks()
            self._rest = Chunks(self._chunks)

        def read(self, size: int = -1, /) -> bytes:
            return self._rest.read(size)

    # Chunks reads its iterator: the FetchError comes out of read(), as from an HTTP body
    with pytest.raises(FetchError, match="broke off"):
        extract_layer(
            Broken(), compression="gzip", root=str(tmp_path), digest=sha256(blob), diff_id=sha256(tar),
            limits=Limits(),
        )  # fmt: skip
    assert no_pipeline_threads()


def test_a_good_layer_passes_both_checks_and_a_wrong_diff_id_is_refused(tmp_path: Path) -> None:
    tar = tar_of(20, 300_000)
    blob = gzip.compress(tar, compresslevel=1)
    (tmp_path / "good").mkdir()
    done = extract_layer(
        io.BytesIO(blob), compression="gzip", root=str(tmp_path / "good"), digest=sha256(blob),
        diff_id=sha256(tar), limits=Limits(),
    )  # fmt: skip
    assert (done.size, done.tree_size) == (len(blob), 20 * 300_000)
    assert (tmp_path / "good/f0019").read_bytes() == bytes([19]) * 300_000
    (tmp_path / "bad").mkdir()
    with pytest.raises(TarError, match="does not match its diff ID"):
        extract_layer(
            io.BytesIO(blob), compression="gzip", root=str(tmp_path / "bad"), digest=sha256(blob),
            diff_id=sha256(tar + b"x"), limits=Limits(),
        )  # fmt: skip
    assert no_pipeline_threads()


def test_a_write_that_fails_stops_every_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tar = tar_of(20, 300_000)
    blob = gzip.compress(tar, compresslevel=1)

    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(layer_module.LayerWriter, "add", full)
    with pytest.raises(OSError, match="No space left"):
        extract_layer(
            io.BytesIO(blob), compression="gzip", root=str(tmp_path), digest=sha256(blob),
            diff_id=sha256(tar), limits=Limits(),
        )  # fmt: skip
    assert no_pipeline_threads()
