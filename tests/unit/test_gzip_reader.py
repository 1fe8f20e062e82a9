"""The gzip reader ACIs and OCI layers go through: members, headers with every optional field,
padding, and each way a stream can be damaged (CRC, length, truncation, garbage after)."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib

import pytest

from stage0.images.aci.compression import GzipReader

PLAIN = os.urandom(3 << 20) + b"a" * 100_000
SMALL = b"hello" * 1000


def inflate(data: bytes, size: int = 7777, raw: io.RawIOBase | None = None) -> bytes:
    reader, out = GzipReader(raw or io.BytesIO(data)), []  # type: ignore[arg-type]
    while chunk := reader.read(size):
        out.append(chunk)
    return b"".join(out)


def member_with_every_header_field(data: bytes) -> bytes:
    flags = 4 | 8 | 16 | 2  # FEXTRA, FNAME, FCOMMENT, FHCRC
    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0" * 4 + b"\0\xff"
    header += struct.pack("<H", 3) + b"xyz" + b"name\0" + b"comment\0" + b"\0\0"
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


class Trickle(io.RawIOBase):
    """Three bytes per read: every header and trailer split across reads."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.at : self.at + 3]
        self.at += 3
        return chunk


def test_members_padding_and_header_fields() -> None:
    assert inflate(gzip.compress(PLAIN)) == PLAIN
    assert inflate(gzip.compress(PLAIN, mtime=0), size=-1) == PLAIN
    two = gzip.compress(PLAIN) + b"\0" * 100 + gzip.compress(SMALL) + b"\0\0"
    assert inflate(two) == PLAIN + SMALL
    assert inflate(member_with_every_header_field(SMALL)) == SMALL
    trickled = member_with_every_header_field(SMALL) + gzip.compress(SMALL)
    assert inflate(b"", 100, Trickle(trickled)) == SMALL + SMALL


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda g: g[:-3], "inside a member's trailer"),
        (lambda g: g[:5], "inside a member's header"),
        (lambda g: b"", "ended before the end"),
        (lambda g: g[: len(g) // 2], "ended before the end"),
        (lambda g: g[:-8] + b"\0\0\0\0" + g[-4:], "CRC or length"),
        (lambda g: g[:-4] + b"\1\0\0\0", "CRC or length"),
        (lambda g: g + b"garbage, not gzip", "incorrect header"),
    ],
)
def test_damage_is_an_error(damage: object, error: str) -> None:
    damaged = damage(gzip.compress(SMALL))  # type: ignore[operator]
    with pytest.raises((EOFError, zlib.error), match=error):
        inflate(damaged)


def test_a_flipped_byte_in_stored_data_fails_the_crc() -> None:
    """Random bytes are stored, not compressed: only the CRC notices a changed byte."""
    data = bytearray(gzip.compress(os.urandom(100_000)))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises((EOFError, zlib.error)):
        inflate(bytes(data))
