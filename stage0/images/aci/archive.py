"""Looking into an ACI file without storing it: the importer's streaming pass with nothing written
(validation and the image ID), or a read that stops at the manifest."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from stage0.errors import InputError
from stage0.images.aci.compression import SNIFF_SIZE, open_reader, sniff
from stage0.images.aci.extract import MANIFEST, classify
from stage0.images.aci.importer import MAX_MANIFEST, Hasher, Imported, import_stream
from stage0.images.aci.tarstream import EntryType, Limits, TarError, TarReader

__all__ = ["inspect_aci", "read_manifest_bytes"]


@contextmanager
def _opened(path: str) -> Iterator[io.BufferedReader]:
    try:
        file = open(path, "rb")  # noqa: SIM115 — closed by the with below
    except OSError as error:
        raise InputError(f"cannot open {path}: {error.strerror}") from None
    with file:
        try:
            yield file
        except TarError as error:  # name the file: validate takes several
            if str(error).startswith(f"{path}: "):
                raise
            raise TarError(f"{path}: {error}", hint=error.hint) from None


def inspect_aci(path: str) -> Imported:
    """Validate an ACI's archive layout, entries and manifest; return its ID and manifest."""
    with _opened(path) as file:
        return import_stream(file, blob=None, rootfs=None, limits=Limits(), name=path)


def read_manifest_bytes(path: str) -> bytes:
    """The raw manifest of an ACI, reading only as far as the manifest entry."""
    with _opened(path) as file:
        kind = sniff(file.peek(SNIFF_SIZE))
        if kind is None:
            raise TarError(f"{path}: not an ACI (neither a tar archive nor gzip, bzip2, xz or zstd)")
        limits = Limits()
        reader = TarReader(Hasher(open_reader(file, kind), limits.max_bytes), limits)
        for entry in reader:
            if classify(entry.name).top == MANIFEST:
                if entry.type is not EntryType.FILE or entry.size > MAX_MANIFEST:
                    raise TarError(
                        f"{path}: 'manifest' must be one regular file of at most {MAX_MANIFEST} bytes"
                    )
                return b"".join(bytes(c) for c in reader.chunks())
    raise TarError(f"{path}: no 'manifest' in archive")
