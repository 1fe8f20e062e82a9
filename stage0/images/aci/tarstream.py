"""A streaming tar reader for untrusted archives (ustar, GNU and pax headers).

Python's ``tarfile`` reads a whole pax or GNU long-name header into memory whatever its size and
has no way to stop a decompression bomb, so images are read with this instead: every header is
bounded, every number checked, and file data is handed out in chunks, never buffered whole.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from stage0.errors import ImageError

BLOCK = 512
CHUNK = 1 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class EntryType(enum.StrEnum):
    FILE = "file"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    CHARDEV = "char device"
    BLOCKDEV = "block device"
    DIR = "directory"
    FIFO = "fifo"


_TYPES = {
    b"0": EntryType.FILE,
    b"\0": EntryType.FILE,
    b"7": EntryType.FILE,
    b"1": EntryType.HARDLINK,
    b"2": EntryType.SYMLINK,
    b"3": EntryType.CHARDEV,
    b"4": EntryType.BLOCKDEV,
    b"5": EntryType.DIR,
    b"6": EntryType.FIFO,
}


class TarError(ImageError):
    hint = "the image archive is malformed or hostile; nothing was stored"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one archive may make us read or write."""

    max_bytes: int = 64 << 30  # total uncompressed size: the decompression-bomb limit
    max_entries: int = 1_000_000
    max_header: int = 1 << 20  # one pax or GNU long-name header
    max_path: int = 4096


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    type: EntryType
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, bytes], ...] = field(default=())


def _number(raw: bytes, what: str) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256 for values that do not fit in octal
        if raw[0] != 0x80:
            raise TarError(f"negative or oversized {what} in tar header")
        return int.from_bytes(raw[1:], "big")
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"bad {what} {text!r} in tar header") from None


def _pax_records(data: bytes) -> dict[str, bytes]:
    """``"%d %s=%s\\n"`` records; the length counts the whole record."""
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarError("malformed pax header") from None
        record = data[space + 1 : pos + length]
        if (
            length <= 0
            or space < 0
            or pos + length > len(data)
            or not record.endswith(b"\n")
            or b"=" not in record
        ):
            raise TarError("malformed pax header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return records


class TarReader:
    """Iterate over an archive's entries; read a FILE's data with :meth:`chunks` before moving on."""

    def __init__(self, stream: Readable, limits: Limits = Limits(), *, lenient_end: bool = False) -> None:
        """``lenient_end``: an archive may stop after its last entry's data, without padding or
        end blocks (container layers written by umoci ≤ 0.4.7 do; Go's reader accepts them)."""
        self._lenient = lenient_end
        self._limits = limits
        self._buffer = memoryview(b"")
        self._consumed = 0
        self._entries = 0
        self._pending = 0  # data (plus padding) of the current entry not yet read
        self._data_size = 0  # data of the current FILE entry not yet handed out
        self._global: dict[str, bytes] = {}
        self._stream = stream

    @property
    def consumed(self) -> int:
        return self._consumed

    def _fill(self, want: int) -> None:
        while len(self._buffer) < want:
            more = self._stream.read(max(CHUNK, want - len(self._buffer)))
            if not more:
                raise TarError("archive ends in the middle of an entry (truncated download?)")
            self._buffer = memoryview(bytes(self._buffer) + more) if self._buffer else memoryview(more)

    def _take(self, size: int) -> memoryview:
        self._fill(size)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        self._consumed += size
        if self._consumed > self._limits.max_bytes:
            raise TarError(
                f"archive is larger than the limit of {self._limits.max_bytes} bytes",
                hint="a decompression bomb, or raise the image size limit",
            )
        return data

    def chunks(self) -> Iterator[memoryview]:
        """The current FILE entry's data, in pieces of at most CHUNK bytes (views into a buffer:
        use each before asking for the next)."""
        remaining, self._data_size = self._data_size, 0
        while remaining:
            if not self._buffer:
                self._fill(1)
            piece = self._take(min(remaining, len(self._buffer), CHUNK))
            remaining -= len(piece)
            self._pending -= len(piece)
            yield piece
        self._skip_pending()

    def _ended(self) -> bool:
        """Whether a lenient archive stops here (nothing more to read)."""
        if not self._lenient or self._buffer:
            return False
        more = self._stream.read(CHUNK)
        self._buffer = memoryview(more)
        return not more

    def _skip_pending(self) -> None:
        while self._pending:
            if self._ended() and self._pending < BLOCK:  # only the last entry's padding is missing
                self._pending = 0
                return
            if not self._buffer:
                self._fill(1)
            step = min(self._pending, len(self._buffer), CHUNK)
            self._take(step)
            self._pending -= step

    def _long(self, size: int) -> bytes:
        if size > self._limits.max_header:
            raise TarError(
                f"tar extension header of {size} bytes is over the limit of {self._limits.max_header}"
            )
        data = bytes(self._take(size))
        self._take(-size % BLOCK)
        return data

    def __iter__(self) -> Iterator[Entry]:
        local: dict[str, bytes] = {}
        while True:
            self._skip_pending()
            if self._ended():
                return
            header = bytes(self._take(BLOCK))
            if header == bytes(BLOCK):
                return  # end of archive (the second zero block and padding are drained by the caller)
            self._check_sum(header)
            kind = header[156:157]
            size = _number(header[124:136], "size")
            if kind in (b"x", b"g", b"L", b"K"):
                data = self._long(size)
                if kind == b"x":
                    local.update(_pax_records(data))
                elif kind == b"g":
                    self._global.update(_pax_records(data))
                else:
                    local["path" if kind == b"L" else "linkpath"] = data.rstrip(b"\0")
                continue
            if kind not in _TYPES:
                raise TarError(
                    f"unsupported tar entry type {kind!r} (sparse and multi-volume archives are refused)"
                )
            self._entries += 1
            if self._entries > self._limits.max_entries:
                raise TarError(f"archive has more than {self._limits.max_entries} entries")
            entry = self._entry(header, _TYPES[kind], size, {**self._global, **local})
            local = {}
            # hard links, devices, dirs carry no data even if the header says otherwise
            self._data_size = entry.size if entry.type is EntryType.FILE else 0
            self._pending = self._data_size + (-self._data_size % BLOCK)
            if self._data_size and self._consumed + self._data_size > self._limits.max_bytes:
                raise TarError(
                    f"{entry.name}: {entry.size} bytes would exceed the limit of "
                    f"{self._limits.max_bytes} bytes",
                    hint="a decompression bomb, or raise the limit",
                )
            yield entry

    @staticmethod
    def _check_sum(header: bytes) -> None:
        stored = _number(header[148:156], "checksum")
        blanked = header[:148] + b" " * 8 + header[156:]
        unsigned = sum(blanked)  # the common case, summed in C; old tars used signed bytes
        if stored != unsigned and stored != unsigned - 256 * sum(1 for b in blanked if b > 127):
            raise TarError("tar header checksum mismatch (not a tar archive, or corrupt)")

    def _entry(self, header: bytes, kind: EntryType, size: int, pax: dict[str, bytes]) -> Entry:
        magic = header[257:263]
        name_raw = header[0:100].split(b"\0", 1)[0]
        if magic == b"ustar\0" and header[345:346] != b"\0":  # POSIX ustar splits long names
            name_raw = header[345:500].split(b"\0", 1)[0] + b"/" + name_raw
        name_raw = pax.get("path", name_raw)
        link_raw = pax.get("linkpath", header[157:257].split(b"\0", 1)[0])
        for raw, what in ((name_raw, "path"), (link_raw, "link target")):
            if len(raw) > self._limits.max_path:
                raise TarError(f"{what} of {len(raw)} bytes is longer than {self._limits.max_path}")
        if any(k.startswith("GNU.sparse") for k in pax):
            raise TarError("sparse files are not supported in images")
        try:
            name, linkname = name_raw.decode("utf-8"), link_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise TarError(f"entry name {name_raw[:200]!r} is not valid UTF-8") from None
        if "\0" in name or "\0" in linkname:
            raise TarError(f"entry name {name!r} contains NUL")

        def num(key: str, raw: bytes, what: str) -> int:
            if key in pax:
                try:
                    return int(pax[key])
                except ValueError:
                    raise TarError(f"{name}: bad pax {key}") from None
            return _number(raw, what)

        try:
            mtime = float(pax["mtime"]) if "mtime" in pax else float(_number(header[136:148], "mtime"))
        except ValueError:
            raise TarError(f"{name}: bad pax mtime") from None
        xattrs = tuple(
            sorted((k[len("SCHILY.xattr.") :], v) for k, v in pax.items() if k.startswith("SCHILY.xattr."))
        )
        return Entry(
            name=name,
            type=kind,
            mode=_number(header[100:108], "mode") & 0o7777,
            uid=num("uid", header[108:116], "uid"),
            gid=num("gid", header[116:124], "gid"),
            size=num("size", header[124:136], "size") if "size" in pax else size,
            mtime=mtime,
            linkname=linkname,
            devmajor=_number(header[329:337], "devmajor"),
            devminor=_number(header[337:345], "devminor"),
            xattrs=xattrs,
        )
