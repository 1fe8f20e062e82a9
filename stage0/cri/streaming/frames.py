"""SPDY/3.1 frames as data, and their wire format (pure: bytes in, frames out, and back).

What kubelet's and crictl's SPDY library (github.com/moby/spdystream) speaks: a data frame is a
31-bit stream ID, flags and a 24-bit length; a control frame has the high bit set, version 3, a
type, flags and a 24-bit length. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are compressed
with zlib primed with SPDY/3's dictionary, one compression context per direction for the whole
connection, so frames must be encoded in the order they are sent and decoded in the order read.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from stage0.cri.streaming.dictionary import SPDY3_DICTIONARY

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
MAX_DATA = 16384  # per data frame: small frames keep one stream from holding the line
HEADER_BLOCK_MAX = 1 << 20  # a header block that inflates beyond this is an attack, not headers

# control frame types
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
# RST_STREAM statuses
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 1, 2, 3, 5, 6, 7
SETTINGS_INITIAL_WINDOW_SIZE = 7

Headers = tuple[tuple[str, str], ...]  # lowercase names; a value with several parts joins them by NUL


class ProtocolError(Exception):
    """The peer sent what SPDY/3.1 does not allow; the session ends."""


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    associated: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers = ()
    fin: bool = False


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)
    clear: bool = False


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good: int
    status: int = 0


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int  # 0: the whole session's window (SPDY/3.1)
    delta: int


Frame = Data | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate


def header(headers: Headers, name: str) -> str:
    """The first value of ``name`` (any case) in ``headers``; "" without one."""
    name = name.lower()
    return next((value.split("\0")[0] for key, value in headers if key == name), "")


def encode_block(headers: Headers) -> bytes:
    """An uncompressed name/value block: a count, then length-prefixed names and values."""
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers:
        raw_name, raw_value = name.lower().encode(), value.encode()
        parts += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(parts)


def decode_block(block: bytes) -> Headers:
    def take(at: int) -> tuple[bytes, int]:
        if at + 4 > len(block):
            raise ProtocolError("a header block ends early")
        (size,) = struct.unpack_from(">I", block, at)
        if at + 4 + size > len(block):
            raise ProtocolError("a header block ends early")
        return block[at + 4 : at + 4 + size], at + 4 + size

    if len(block) < 4:
        raise ProtocolError("a header block ends early")
    (count,) = struct.unpack_from(">I", block)
    at, pairs = 4, []
    for _ in range(count):
        name, at = take(at)
        value, at = take(at)
        if not name or name != name.lower():
            raise ProtocolError(f"header name {name!r} is empty or not lowercase")
        pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return tuple(pairs)


class Encoder:
    """Frames to bytes; owns the connection's outgoing compression context."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9, zdict=SPDY3_DICTIONARY
        )

    def _block(self, headers: Headers) -> bytes:
        return self._zlib.compress(encode_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, Data):
            return b"".join(
                struct.pack(">IB", frame.stream_id & 0x7FFFFFFF, flag)
                + len(chunk).to_bytes(3, "big")
                + chunk
                for chunk, flag in _chunks(frame.data, frame.fin)
            )
        flags = 0
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            body = struct.pack(">IIBB", frame.stream_id, frame.associated, (frame.priority & 7) << 5, 0)
            kind, body = SYN_STREAM, body + self._block(frame.headers)
        elif isinstance(frame, SynReply | HeadersFrame):
            flags = FLAG_FIN if frame.fin else 0
            kind = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
            body = struct.pack(">I", frame.stream_id) + self._block(frame.headers)
        elif isinstance(frame, RstStream):
            kind, body = RST_STREAM, struct.pack(">II", frame.stream_id, frame.status)
        elif isinstance(frame, Settings):
            flags = 1 if frame.clear else 0
            entries = b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in frame.entries)
            kind, body = SETTINGS, struct.pack(">I", len(frame.entries)) + entries
        elif isinstance(frame, Ping):
            kind, body = PING, struct.pack(">I", frame.ping_id)
        elif isinstance(frame, GoAway):
            kind, body = GOAWAY, struct.pack(">II", frame.last_good, frame.status)
        else:
            kind, body = WINDOW_UPDATE, struct.pack(">II", frame.stream_id, frame.delta)
        return struct.pack(">HHB", 0x8000 | VERSION, kind, flags) + len(body).to_bytes(3, "big") + body


def _chunks(data: bytes, fin: bool) -> list[tuple[bytes, int]]:
    pieces = [data[at : at + MAX_DATA] for at in range(0, len(data), MAX_DATA)] or [b""]
    return [(piece, FLAG_FIN if fin and n == len(pieces) - 1 else 0) for n, piece in enumerate(pieces)]


class Decoder:
    """Bytes to frames, as they arrive; owns the incoming decompression context."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(zdict=SPDY3_DICTIONARY)
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            frame = self._frame(head, body)
            if frame is not None:
                frames.append(frame)
        return frames

    def _block(self, raw: bytes) -> Headers:
        try:
            block = self._zlib.decompress(raw, HEADER_BLOCK_MAX)
        except zlib.error as error:
            raise ProtocolError(f"a header block does not inflate: {error}") from None
        if self._zlib.unconsumed_tail:
            raise ProtocolError("a header block inflates beyond 1 MiB")
        return decode_block(block)

    def _frame(self, head: bytes, body: bytes) -> Frame | None:
        first, flags = struct.unpack_from(">IB", head)
        if not first & 0x80000000:
            return Data(first & 0x7FFFFFFF, body, bool(flags & FLAG_FIN))
        version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version} (this server speaks 3.1)")
        fin = bool(flags & FLAG_FIN)
        need = {SYN_STREAM: 10, SYN_REPLY: 4, HEADERS: 4, RST_STREAM: 8, SETTINGS: 4, PING: 4, GOAWAY: 8}
        if len(body) < need.get(kind, 0) or (kind == WINDOW_UPDATE and len(body) < 8):
            raise ProtocolError(f"control frame {kind} is too short")
        if kind == SYN_STREAM:
            sid, assoc, prio, _ = struct.unpack_from(">IIBB", body)
            return SynStream(
                sid & 0x7FFFFFFF,
                self._block(body[10:]),
                assoc & 0x7FFFFFFF,
                prio >> 5,
                fin,
                bool(flags & FLAG_UNIDIRECTIONAL),
            )
        if kind in (SYN_REPLY, HEADERS):
            (sid,) = struct.unpack_from(">I", body)
            cls = SynReply if kind == SYN_REPLY else HeadersFrame
            return cls(sid & 0x7FFFFFFF, self._block(body[4:]), fin)
        if kind == RST_STREAM:
            sid, status = struct.unpack_from(">II", body)
            return RstStream(sid & 0x7FFFFFFF, status)
        if kind == SETTINGS:
            (count,) = struct.unpack_from(">I", body)
            if len(body) < 4 + 8 * count:
                raise ProtocolError("a SETTINGS frame ends early")
            pairs = [struct.unpack_from(">II", body, 4 + 8 * n) for n in range(count)]
            return Settings(
                tuple((key >> 24, key & 0xFFFFFF, value) for key, value in pairs), bool(flags & 1)
            )
        if kind == PING:
            return Ping(struct.unpack_from(">I", body)[0])
        if kind == GOAWAY:
            last, status = struct.unpack_from(">II", body)
            return GoAway(last & 0x7FFFFFFF, status)
        if kind == WINDOW_UPDATE:
            sid, delta = struct.unpack_from(">II", body)
            return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return None  # NOOP, CREDENTIAL and unknown types: SPDY says ignore them
