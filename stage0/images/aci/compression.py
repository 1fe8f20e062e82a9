"""Compression of ACI streams: sniffing by magic number, streaming readers and writers.

appc names gzip, bzip2 and xz; nspod adds zstd, which decompresses several times faster.
"""

from __future__ import annotations

import bz2
import enum
import gzip
import io
import lzma
import struct
import zlib
from typing import BinaryIO, NoReturn, cast

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
    (Python 3.11), which costs several times the inflation itself on a fast stream. Each member is
    inflated as raw deflate and its CRC-32 and length checked here: zlib.crc32 over the output
    costs a third of what zlib's own gzip mode adds (bench/pull). A stream that stops inside a
    member is an error; zeros may pad between members, as gzip allows."""

    RAW = 1 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = b""  # bytes read, not yet inflated (or a trailer, or the next header)
        self._inflate: zlib._Decompress | None = None  # None between members
        self._members = 0
        self._crc = self._size = 0

    def read(self, size: int = -1, /) -> bytes:
        want = self.RAW if size < 0 else size
        while True:
            inflate = self._inflate or self._start_member()
            if inflate is None:
                return b""
            if inflate.eof:
                self._end_member(inflate)
                continue
            if inflate.unconsumed_tail:
                data = inflate.decompress(inflate.unconsumed_tail, want)
            else:
                raw, self._pending = self._pending or self._raw.read(self.RAW), b""
                if not raw:
                    raise EOFError("compressed data ended before the end of the gzip stream")
                data = inflate.decompress(raw, want)
            if data:
                self._crc = zlib.crc32(data, self._crc)
                self._size += len(data)
                return data

    def _more(self, need: int) -> bool:
        """At least ``need`` pending bytes, reading as needed; False at the end of the stream."""
        while len(self._pending) < need:
            more = self._raw.read(self.RAW)
            if not more:
                return False
            self._pending += more
        return True

    def _start_member(self) -> zlib._Decompress | None:
        while not self._pending.lstrip(b"\0"):
            self._pending = b""
            if not self._more(1):
                if not self._members:
                    raise EOFError("compressed data ended before the end of the gzip stream")
                return None
        self._pending = self._pending.lstrip(b"\0")
        while (start := _gzip_header_end(self._pending)) is None:
            if not self._more(len(self._pending) + 1):
                raise EOFError("the gzip stream ended inside a member's header")
        self._inflate = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        self._crc = self._size = 0
        self._pending = self._pending[start:]  # the inflater's first input
        return self._inflate

    def _end_member(self, inflate: zlib._Decompress) -> None:
        self._pending = inflate.unused_data
        if not self._more(8):
            raise EOFError("the gzip stream ended inside a member's trailer")
        crc, size = struct.unpack("<II", self._pending[:8])
        if crc != self._crc or size != self._size & 0xFFFFFFFF:
            raise zlib.error("CRC or length check failed at the end of a gzip member")
        self._pending = self._pending[8:]
        self._inflate = None
        self._members += 1


def _gzip_header_end(data: bytes) -> int | None:
    """Where a member's deflate data starts after its header (RFC 1952), None if more is needed."""
    if len(data) < 10:
        if not b"\x1f\x8b\x08".startswith(data[:3]):
            _bad_header()
        return None
    if data[:3] != b"\x1f\x8b\x08":
        _bad_header()
    flags, at = data[3], 10
    if flags & 4:  # FEXTRA
        if len(data) < at + 2:
            return None
        at += 2 + int.from_bytes(data[at : at + 2], "little")
    for flag in (8, 16):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = data.find(b"\0", at)
            if end < 0:
                return None
            at = end + 1
    if flags & 2:  # FHCRC
        at += 2
    return at if len(data) >= at else None


def _bad_header() -> NoReturn:
    raise zlib.error("incorrect header check (not gzip data)")


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
