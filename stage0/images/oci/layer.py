"""One OCI layer, from its compressed stream into a directory of its own, checked twice on the way:
the compressed bytes against the manifest's digest, the tar against the config's diff ID.

The directory is an overlayfs layer: a whiteout ``.wh.NAME`` becomes the character device 0/0
``NAME`` and an opaque marker ``.wh..wh..opq`` the ``overlay.opaque`` attribute of its directory
(``trusted.`` for the host's overlays, ``user.`` for those a pod's own user namespace mounts).
Everything else goes through the ACI extractor's rules (stage0/images/aci/extract.py): no absolute or
``..`` paths, nothing written through a symlink or a file, no device nodes outside /dev.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from stage0.images.aci.compression import Compression, open_reader
from stage0.images.aci.extract import TreeWriter, check_placement
from stage0.images.aci.importer import Hasher, Prefetch
from stage0.images.aci.tarstream import CHUNK, Entry, EntryType, Limits, Readable, TarError, TarReader

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


class Digested:
    """Hashes what passes (the compressed blob, against the manifest's digest); errors pass through."""

    def __init__(self, source: Readable, algorithm: str) -> None:
        self._source, self.hash, self.size = source, hashlib.new(algorithm), 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data


class Chunks:
    """A Readable over an iterator of byte strings (an HTTP body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer, self._at = b"", 0  # an offset: slicing off the rest would copy it every read

    def read(self, size: int = -1, /) -> bytes:
        while self._at >= len(self._buffer):
            try:
                self._buffer, self._at = next(self._chunks), 0
            except StopIteration:
                return b""
        if self._at == 0 and (size < 0 or size >= len(self._buffer)):
            self._at = len(self._buffer)
            return self._buffer
        end = len(self._buffer) if size < 0 else min(len(self._buffer), self._at + size)
        data, self._at = self._buffer[self._at : end], end
        return data


def layer_path(name: str) -> str:
    """An entry's path inside the layer, refusing absolute and climbing ones."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise TarError(
            f"layer entry {name!r} points outside the layer", hint="the layer is hostile; refused"
        )
    return "/".join(parts)


class LayerWriter:
    """TreeWriter for a layer: whiteouts and opaque markers in overlayfs's own form."""

    def __init__(self, root: str) -> None:
        self.tree = TreeWriter(root)

    @property
    def bytes(self) -> int:
        return self.tree.bytes

    def add(self, entry: Entry, data: Iterable[memoryview]) -> None:
        rel = layer_path(entry.name)
        base = rel.rsplit("/", 1)[-1]
        if not base.startswith(WHITEOUT):
            self.tree.add(entry, rel, data)
            return
        parent = rel.rpartition("/")[0]
        if base == OPAQUE:
            self._directory(parent)
            for name in OPAQUE_XATTRS:
                os.setxattr(self.tree._path(parent), name, b"y", follow_symlinks=False)
            return
        hidden = base[len(WHITEOUT) :]
        if not hidden or hidden in (".", "..") or hidden.startswith(WHITEOUT):
            raise TarError(
                f"layer whiteout {entry.name!r} names no file", hint="the layer is hostile; refused"
            )
        target = f"{parent}/{hidden}" if parent else hidden
        marker = replace(entry, type=EntryType.FILE, size=0)  # its parents checked like a file's
        for missing in check_placement(marker, target, self.tree.kinds):
            os.mkdir(self.tree._path(missing), 0o755)
            self.tree.kinds[missing] = "implicit directory"
        os.mknod(self.tree._path(target), stat.S_IFCHR | 0o000, os.makedev(0, 0))
        self.tree.kinds[target] = "whiteout"

    def _directory(self, rel: str) -> None:
        if not rel or self.tree.kinds.get(rel) in (EntryType.DIR, "implicit directory"):
            return
        marker = Entry(name=rel, type=EntryType.DIR, mode=0o755, uid=0, gid=0, size=0, mtime=0)
        for missing in [*check_placement(marker, rel, self.tree.kinds), rel]:
            os.mkdir(self.tree._path(missing), 0o755)
            self.tree.kinds[missing] = "implicit directory"

    def finish(self) -> None:
        self.tree.finish()


def _check_digest(raw: Digested, digest: str) -> None:
    while raw.read(CHUNK):  # whatever follows the compressed stream is part of the blob
        pass
    if f"{digest.split(':')[0]}:{raw.hash.hexdigest()}" != digest:
        raise TarError(
            f"layer {digest} does not match its digest", hint="the blob was altered; nothing was stored"
        )


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str  # of the compressed blob (sha256:…)
    diff_id: str  # of the tar
    size: int  # compressed bytes
    tree_size: int  # bytes of file data written


def extract_layer(
    source: Readable, *, compression: str, root: str, digest: str, diff_id: str, limits: Limits
) -> Layer:
    """Extract a layer's blob from ``source`` into the empty directory ``root`` and check both
    digests; a mismatch raises TarError (the caller removes ``root``)."""
    raw = Digested(source, digest.split(":")[0])
    reader_ = open_reader(raw, Compression(compression))  # type: ignore[arg-type]
    unpacked = Hasher(reader_, limits.max_bytes, diff_id.split(":")[0])
    stream = Prefetch(unpacked)
    writer = LayerWriter(root)
    try:
        reader = TarReader(stream, limits, lenient_end=True)
        for entry in reader:
            writer.add(entry, reader.chunks() if entry.type is EntryType.FILE else ())
        while stream.read(CHUNK):  # the end blocks: part of the diff ID
            pass
    except TarError:
        stream.close()
        _check_digest(raw, digest)  # an altered blob says so, rather than what broke in it
        raise
    finally:
        stream.close()
    writer.finish()
    _check_digest(raw, digest)
    if f"{diff_id.split(':')[0]}:{unpacked.hash.hexdigest()}" != diff_id:
        raise TarError(
            f"layer {digest} does not match its diff ID {diff_id}",
            hint="the image is inconsistent; nothing was stored",
        )
    return Layer(digest, diff_id, raw.size, writer.bytes)
