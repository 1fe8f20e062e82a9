"""Compression of ACI streams: sniffing by magic number, streaming readers and writers.

appc names gzip, bzip2 and xz; nspod adds zstd, which decompresses several times faster.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
import zlib
from typing import BinaryIO, cast

from stage0.errors import ImageError


class Compression(enum.StrEnum):
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    ZSTD = "zstd"
    NONE = "none"


_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", Compression.GZIP),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
)
BUILD_COMPRESSIONS = (Compression.GZIP, Compression.XZ, Compression.ZSTD, Compression.NONE)
SNIFF_SIZE = 512


def sniff(head: bytes) -> Compression | None:
    """The compression of a stream starting with ``head``; NONE for a plain tar, None for neither."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return Compression.NONE
    return None


def open_reader(raw: BinaryIO, kind: Compression) -> BinaryIO:
    """A stream of the decompressed bytes of ``raw``."""
    match kind:
        case Compression.GZIP:
            return cast(BinaryIO, GzipReader(raw))
        case Compression.BZIP2:
            return cast(BinaryIO, bz2.BZ2File(raw, "rb"))
        case Compression.XZ:
            return cast(BinaryIO, lzma.LZMAFile(raw, "rb"))
        case Compression.ZSTD:
            import zstandard

            return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
        case Compression.NONE:
            return raw


class GzipReader:
    """gzip's members, inflated by zlib from reads of a MiB: gzip.GzipFile reads 8 KiB at a time
    (Python 3.11), which costs several times the inflation itself on a fast stream. zlib checks
    each member's CRC and length; a stream that stops inside a member is an error."""

    RAW = 1 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._inflate = zlib.decompressobj(wbits=31)
        self._ended = False

    def read(self, size: int = -1, /) -> bytes:
        want = self.RAW if size < 0 else size
        while not self._ended:
            if self._inflate.eof:  # what follows a member is in unused_data (and, stale, in the tail)
                data = self._next_member(want)
            elif self._inflate.unconsumed_tail:
                data = self._inflate.decompress(self._inflate.unconsumed_tail, want)
            else:
                raw = self._raw.read(self.RAW)
                if not raw:
                    raise EOFError("compressed data ended before the end of the gzip stream")
                data = self._inflate.decompress(raw, want)
            if data:
                return data
        return b""

    def _next_member(self, want: int) -> bytes:
        """Another member may follow one (after padding zeros, as gzip allows), or the end."""
        rest = self._inflate.unused_data.lstrip(b"\0")
        while not rest:
            more = self._raw.read(self.RAW)
            if not more:
                self._ended = True
                return b""
            rest = more.lstrip(b"\0")
        self._inflate = zlib.decompressobj(wbits=31)
        return self._inflate.decompress(rest, want)


def open_writer(raw: BinaryIO, kind: Compression) -> BinaryIO:
    """A stream that compresses into ``raw``; closing it finishes the stream but leaves ``raw`` open.

    Output is reproducible: gzip gets no name and mtime 0 in its header.
    """
    match kind:
        case Compression.GZIP:
            return cast(
                BinaryIO, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
            )
        case Compression.XZ:
            return cast(BinaryIO, lzma.LZMAFile(raw, "wb", preset=6))
        case Compression.ZSTD:
            import zstandard

            return cast(BinaryIO, zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False))
        case Compression.NONE:
            return cast(BinaryIO, _Unclosing(raw))
        case _:
            raise ImageError(f"cannot write {kind} archives", hint="use gzip, xz, zstd or none")


class _Unclosing(io.RawIOBase):
    """Passes writes through; close() does not close the file underneath."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return self._raw.write(data)
