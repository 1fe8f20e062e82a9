"""One OCI layer, from its compressed stream into a directory of its own, checked twice on the way:
the compressed bytes against the manifest's digest, the tar against the config's diff ID.

The directory is an overlayfs layer: a whiteout ``.wh.NAME`` becomes the character device 0/0
``NAME`` and an opaque marker ``.wh..wh..opq`` the ``overlay.opaque`` attribute of its directory
(``trusted.`` for the host's overlays, ``user.`` for those a pod's own user namespace mounts).
Everything else goes through the ACI extractor's rules (stage0/images/aci/extract.py): no absolute or
``..`` paths, nothing written through a symlink or a file, no device nodes outside /dev.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from stage0.images.aci.compression import Compression, open_reader
from stage0.images.aci.extract import TreeWriter, check_placement
from stage0.images.aci.importer import Bounded
from stage0.images.aci.tarstream import CHUNK, Entry, EntryType, Limits, Readable, TarError, TarReader
from stage0.images.oci.pipeline import Line, Pipe, Stopped, Summed, fan_out, pipe_reader

WHITEOUT, OPAQUE = ".wh.", ".wh..wh..opq"
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


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
    digests; a mismatch raises TarError (the caller removes ``root``).

    Five threads share the work (stage0/images/oci/pipeline.py): on the blob's line the download
    (``source`` read to its end: whatever follows the compressed stream is part of the blob) and
    the blob's digest; on the tree's line the inflation, the diff ID and, in this thread, the tar
    read into ``root``. A blob that is not what its digest says stops the tree's line at once."""
    lock = threading.Lock()
    blob_line, tree_line = Line(lock), Line(lock)
    to_digest, to_inflate = Pipe(blob_line, blob_line), Pipe(blob_line, tree_line)
    to_tar, to_diff = Pipe(tree_line, tree_line), Pipe(tree_line, tree_line)
    blob, tree = Summed(to_digest, digest.split(":")[0]), Summed(to_diff, diff_id.split(":")[0])

    def check_blob() -> None:
        blob.run()
        if blob.complete and not blob.matches(digest):
            error = _altered(digest)
            tree_line.fail(error)
            raise error

    # made before any thread starts (nothing is read yet): a compression that cannot be read
    # leaves no thread behind
    inflated = Bounded(open_reader(pipe_reader(to_inflate), Compression(compression)), limits.max_bytes)  # type: ignore[arg-type]
    writer = LayerWriter(root)
    try:
        blob_line.start("download", lambda: fan_out(source.read, CHUNK, (to_digest, to_inflate)))
        blob_line.start("blob-digest", check_blob)
        tree_line.start("inflate", lambda: fan_out(inflated.read, CHUNK, (to_tar, to_diff)))
        tree_line.start("diff-id", tree.run)
        stream = pipe_reader(to_tar)
        reader = TarReader(stream, limits, lenient_end=True)
        for entry in reader:
            writer.add(entry, reader.chunks() if entry.type is EntryType.FILE else ())
        while stream.read(CHUNK):  # the end blocks: part of the diff ID
            pass
        writer.finish()
    except BaseException as error:
        tree_line.stop()
        if not isinstance(error, TarError | Stopped):  # the transfer, a write, an interrupt
            blob_line.stop()
            raise
        # the rest of the blob is read for its digest: an altered blob says so, rather than
        # what broke in it
        raise (blob_line.wait() or _stopped(tree_line) or error) from None
    tree_line.wait()
    if (altered := blob_line.wait()) is not None or not blob.matches(digest):
        raise altered or _altered(digest)
    if not tree.matches(diff_id):
        raise TarError(
            f"layer {digest} does not match its diff ID {diff_id}",
            hint="the image is inconsistent; nothing was stored",
        )
    return Layer(digest, diff_id, blob.size, writer.bytes)


def _altered(digest: str) -> TarError:
    return TarError(
        f"layer {digest} does not match its digest", hint="the blob was altered; nothing was stored"
    )


def _stopped(line: Line) -> BaseException | None:
    """What stopped ``line`` from outside, if it was not this thread's own leaving."""
    return None if isinstance(line.error, Stopped) else line.error
