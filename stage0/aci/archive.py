"""Reading ACI archives: one streaming pass validates the layout, parses the manifest and computes
the image ID (SHA-512 of the uncompressed tar), so nothing is decompressed twice."""

from __future__ import annotations

import hashlib
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from stage0.aci.compression import SNIFF_SIZE, Compression, open_reader, sniff
from stage0.errors import ImageError, InputError
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.image import ImageManifest

CHUNK = 1 << 20
MANIFEST, ROOTFS = "manifest", "rootfs"


class HashingReader:
    """A read-only stream that feeds every byte it hands out to SHA-512."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha512()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> str:
        """Hash what is left (tar padding after the end marker) and return the image ID."""
        while self.read(CHUNK):
            pass
        return "sha512-" + self.hash.hexdigest()


@dataclass(frozen=True, slots=True)
class ACIInfo:
    image_id: str
    compression: Compression
    manifest: ImageManifest
    manifest_bytes: bytes


def member_name(name: str) -> str:
    """An archive member's name as a clean relative path; refuses absolute and ``..`` names."""
    cleaned = posixpath.normpath(name)
    if name.startswith("/") or cleaned == ".." or cleaned.startswith("../"):
        raise ImageError(
            f"unsafe path {name!r} in archive", hint="an ACI's paths must stay inside the image"
        )
    return cleaned


@contextmanager
def open_aci(path: str) -> Iterator[tuple[BinaryIO, Compression]]:
    """The decompressed stream of the ACI at ``path`` and its compression."""
    try:
        raw: BinaryIO = open(path, "rb")  # noqa: SIM115 — closed below, after the reader
    except OSError as error:
        raise InputError(f"cannot open {path}: {error.strerror}") from None
    with raw:
        kind = sniff(raw.peek(SNIFF_SIZE) if hasattr(raw, "peek") else b"")
        if kind is None:
            raise ImageError(f"{path}: not an ACI (neither a tar archive nor gzip, bzip2, xz or zstd)")
        try:
            yield open_reader(raw, kind), kind
        except (OSError, EOFError, zlib.error, lzma.LZMAError, tarfile.TarError) as error:
            if isinstance(error, InputError | ImageError):
                raise
            raise ImageError(f"{path}: corrupt {kind} archive: {error}") from None


def inspect_aci(path: str) -> ACIInfo:
    """Validate an ACI's archive layout and manifest; return its ID and manifest."""
    with open_aci(path) as (stream, kind):
        reader = HashingReader(stream)
        seen: set[str] = set()
        manifest_bytes: bytes | None = None
        has_rootfs = False
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
            for member in tar:
                name = member_name(member.name)
                if name in seen and name not in (MANIFEST, ROOTFS):
                    raise ImageError(f"{path}: duplicate entry {name!r} in archive")
                seen.add(name)
                if name == MANIFEST:
                    if not member.isreg():
                        raise ImageError(f"{path}: 'manifest' is not a regular file")
                    file = tar.extractfile(member)
                    assert file is not None
                    manifest_bytes = file.read()
                elif name == ROOTFS or name.startswith(ROOTFS + "/"):
                    if name == ROOTFS and not member.isdir():
                        raise ImageError(f"{path}: 'rootfs' is not a directory")
                    has_rootfs = True
                elif name != ".":
                    raise ImageError(
                        f"{path}: unexpected entry {name!r}",
                        hint="an ACI holds only 'manifest' and 'rootfs/' at its top level",
                    )
        image_id = reader.drain()
    if manifest_bytes is None:
        raise ImageError(f"{path}: no 'manifest' in archive")
    if not has_rootfs:
        raise ImageError(f"{path}: no 'rootfs' directory in archive")
    manifest = parse_image_manifest(manifest_bytes, f"{path}:manifest")
    return ACIInfo(image_id, kind, manifest, manifest_bytes)


def read_manifest_bytes(path: str) -> bytes:
    """The raw manifest of an ACI, reading only as far as the manifest entry."""
    with open_aci(path) as (stream, _), tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member_name(member.name) == MANIFEST and member.isreg():
                file = tar.extractfile(member)
                assert file is not None
                data: bytes = file.read()
                return data
    raise ImageError(f"{path}: no 'manifest' in archive")
