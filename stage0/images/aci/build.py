"""``nspod image build``: an image layout → a reproducible ACI.

Entries are written in sorted order with their own metadata (mode, mtime, owner, xattrs), the
manifest first so readers find it early; the same layout always gives the same image ID.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from stage0.errors import ImageError, ImageExistsError, InputError
from stage0.images.aci.compression import Compression, open_writer
from stage0.images.aci.extract import MANIFEST, ROOTFS
from stage0.images.aci.layout import check_layout


class HashingWriter:
    """Hashes the uncompressed tar stream on its way to the compressor: the image ID, for free."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.hash = hashlib.sha512()

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return self._sink.write(data)


def walk_sorted(root: str, arcroot: str) -> Iterator[tuple[str, str]]:
    """(path on disk, name in archive) for ``root`` and everything below it, depth-first, sorted."""
    yield root, arcroot
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from walk_sorted(entry.path, f"{arcroot}/{entry.name}")
        else:
            yield entry.path, f"{arcroot}/{entry.name}"


def _tarinfo(tar: tarfile.TarFile, path: str, arcname: str, owner_root: bool) -> tarfile.TarInfo | None:
    # typeshed says TarInfo, but CPython returns None for sockets
    info = cast("tarfile.TarInfo | None", tar.gettarinfo(path, arcname))
    if info is None:  # sockets cannot be archived; appc images never need them
        return None
    if owner_root:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        names = []
    headers = dict(info.pax_headers)
    for name in names:
        raw = os.getxattr(path, name, follow_symlinks=False)
        headers["SCHILY.xattr." + name] = raw.decode("utf-8", "surrogateescape")
    info.pax_headers = headers
    return info


def _write_tar(sink: HashingWriter, layout_path: str, owner_root: bool) -> None:
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        entries = [
            (os.path.join(layout_path, MANIFEST), MANIFEST),
            *walk_sorted(os.path.join(layout_path, ROOTFS), ROOTFS),
        ]
        for path, arcname in entries:
            info = _tarinfo(tar, path, arcname, owner_root)
            if info is None:
                continue
            if info.isreg():
                with open(path, "rb") as file:
                    tar.addfile(info, file)
            else:
                tar.addfile(info)


def build_aci(
    layout_path: str,
    output: str,
    *,
    compression: Compression = Compression.GZIP,
    owner_root: bool = False,
    overwrite: bool = False,
) -> str:
    """Build ``output`` from the layout; returns the image ID. The output appears whole or not at all."""
    if not output.endswith(".aci"):
        raise InputError(f"{output}: an ACI's file name must end in .aci", hint=f"use {output}.aci")
    check_layout(layout_path)
    if os.path.lexists(output) and not overwrite:
        raise ImageExistsError(f"{output} already exists")
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise InputError(f"cannot write to {directory}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as raw:
            compressor = open_writer(raw, compression)
            sink = HashingWriter(compressor)
            _write_tar(sink, layout_path, owner_root)
            compressor.close()
            raw.flush()
            os.fchmod(raw.fileno(), 0o644)
            os.fsync(raw.fileno())
        os.replace(temp, output)
    except BaseException as error:
        os.unlink(temp)
        if isinstance(error, OSError):
            raise ImageError(f"building {output} failed: {error}") from error
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a crash too
    finally:
        os.close(dir_fd)
    return "sha512-" + sink.hash.hexdigest()
