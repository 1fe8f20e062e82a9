"""Importing an ACI in one streaming pass: the raw bytes are copied to the blob file as they are
read, decompressed, hashed (the image ID) and parsed, and the rootfs is extracted, all at once.

Nothing is kept from a failed import: the caller's temporary workspace is removed whole.
"""

from __future__ import annotations

import hashlib
import lzma
import queue
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from stage0.errors import is_full
from stage0.images.aci.compression import SNIFF_SIZE, Compression, open_reader, sniff
from stage0.images.aci.extract import MANIFEST, PlacementCheck, TreeWriter, classify
from stage0.images.aci.tarstream import CHUNK, EntryType, Limits, Readable, TarError, TarReader

if TYPE_CHECKING:  # the schema is loaded by the imports that parse a manifest, not by OCI pulls
    from stage0.schema.image import ImageManifest

MAX_MANIFEST = 1 << 20


class Tee:
    """Reads from ``source``, copying every raw byte to ``sink`` (the blob being stored)."""

    def __init__(self, source: Readable, sink: BinaryIO | None, head: bytes = b"") -> None:
        self._source, self._sink, self._head = source, sink, head
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            data, self._head = (
                (self._head, b"")
                if size < 0 or size >= len(self._head)
                else (self._head[:size], self._head[size:])
            )
            return data
        data = self._source.read(size)
        if data:
            self.size += len(data)
            if self._sink is not None:
                self._sink.write(data)
        return data


class Bounded:
    """The decompressed stream, bounded (the decompression-bomb limit); what breaks in the
    decompression is a TarError."""

    def __init__(self, source: Readable, limit: int) -> None:
        self._source, self._limit = source, limit
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._source.read(size)
        except TarError:
            raise
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as error:
            if is_full(error):  # writing the blob as it is read: the disk, not the data
                raise
            raise TarError(f"corrupt compressed data: {error}") from None
        except Exception as error:  # zstandard.ZstdError has no common base with the others
            if type(error).__name__ != "ZstdError":
                raise
            raise TarError(f"corrupt compressed data: {error}") from None
        self.size += len(data)
        if self.size > self._limit:
            raise TarError(
                f"image is larger than the limit of {self._limit} bytes once decompressed",
                hint="a decompression bomb, or raise the image size limit",
            )
        self._seen(data)
        return data

    def _seen(self, data: bytes) -> None:
        pass


class Hasher(Bounded):
    """The bounded decompressed stream, hashed as it is read."""

    def __init__(self, source: Readable, limit: int, algorithm: str = "sha512") -> None:
        super().__init__(source, limit)
        self.hash = hashlib.new(algorithm)

    def _seen(self, data: bytes) -> None:
        self.hash.update(data)


class Prefetch:
    """Reads ``source`` ahead in a thread, so decompression and hashing (which release the GIL)
    run on one core while tar parsing and file writes run on the other."""

    _DONE = object()

    def __init__(self, source: Readable, depth: int = 8) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buffer = b""
        self._eof = False
        self._thread = threading.Thread(target=self._run, name="nspod-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(CHUNK)
                if not data:
                    break
                if not self._put(data):
                    return
            self._put(self._DONE)
        except BaseException as error:  # handed to the reading thread, raised there
            self._put(error)

    def read(self, size: int = -1, /) -> bytes:
        while not self._buffer and not self._eof:
            item = self._queue.get()
            if item is self._DONE:
                self._eof = True
            elif isinstance(item, BaseException):
                self._eof = True
                raise item
            else:
                assert isinstance(item, bytes)
                self._buffer = item
        if size < 0 or size >= len(self._buffer):
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        """Stop the thread and wait for it; the source is not touched afterwards."""
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True, slots=True)
class Imported:
    image_id: str
    manifest: ImageManifest
    manifest_bytes: bytes
    compression: Compression
    raw_size: int  # bytes of the ACI as received (what the blob holds)
    tree_size: int  # bytes of file data extracted


def import_stream(
    source: Readable, *, blob: BinaryIO | None, rootfs: str | None, limits: Limits, name: str = "image"
) -> Imported:
    """Read an ACI from ``source``; copy it to ``blob`` and extract its rootfs into the empty
    directory ``rootfs`` (either may be None: without a rootfs, the entries are only checked).
    ``name`` is used in error messages."""
    tee = Tee(source, blob)
    head = tee.read(SNIFF_SIZE)
    kind = sniff(head)
    if kind is None:
        raise TarError(f"{name}: not an ACI (neither a tar archive nor gzip, bzip2, xz or zstd)")
    tee = Tee(tee, None, head)
    hasher = Hasher(open_reader(tee, kind), limits.max_bytes)  # type: ignore[arg-type]
    stream = Prefetch(hasher)
    try:
        writer = TreeWriter(rootfs) if rootfs is not None else PlacementCheck()
        manifest_bytes: bytes | None = None
        saw_rootfs = False
        reader = TarReader(stream, limits)
        for entry in reader:
            target = classify(entry.name)
            if target.top == MANIFEST:
                if (
                    manifest_bytes is not None
                    or entry.type is not EntryType.FILE
                    or entry.size > MAX_MANIFEST
                ):
                    raise TarError(
                        f"{name}: 'manifest' must be one regular file of at most {MAX_MANIFEST} bytes"
                    )
                manifest_bytes = b"".join(bytes(c) for c in reader.chunks())
                continue
            saw_rootfs = True
            writer.add(entry, target.rel, reader.chunks() if entry.type is EntryType.FILE else ())
        while stream.read(CHUNK):  # the tar's end padding: part of the image ID
            pass
    finally:
        stream.close()
    image_id = "sha512-" + hasher.hash.hexdigest()
    writer.finish()
    if manifest_bytes is None:
        raise TarError(f"{name}: no 'manifest' in archive")
    if not saw_rootfs:
        raise TarError(f"{name}: no 'rootfs' directory in archive")
    from stage0.schema.boundary import parse_image_manifest

    manifest = parse_image_manifest(manifest_bytes, f"{name}:manifest")
    # the raw stream may hold bytes past the compressed data (or the tar end): keep them in the blob
    while tee.read(CHUNK):
        pass
    return Imported(image_id, manifest, manifest_bytes, kind, tee.size + len(head), writer.bytes)
