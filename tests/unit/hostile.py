"""Generators of hostile image archives. Each returns the archive bytes; ``out`` is a directory
outside the store the archive tries to reach."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = json.dumps(
    {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/evil"}
).encode()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


LAYERS = False  # True: the corpus as OCI layers (no manifest, rootfs/ taken off every name)


def _as_layer(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.name = info.name.removeprefix("rootfs/")
    if info.type == tarfile.LNKTYPE:
        info.linkname = info.linkname.removeprefix("rootfs/")
    return info


def archive(
    *members: tuple[tarfile.TarInfo, bytes | None], base: bool = True, fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    """A tar of the manifest, rootfs/ and ``members`` (data None: no data)."""
    out = io.BytesIO()
    if LAYERS:
        members = tuple((_as_layer(info), data) for info, data in members)
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        if base and not LAYERS:
            m = _info("manifest")
            m.size = len(MANIFEST)
            tar.addfile(m, io.BytesIO(MANIFEST))
            tar.addfile(_info("rootfs", tarfile.DIRTYPE))
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file(name: str, data: bytes = b"evil\n", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, **attrs), data


def entry(name: str, kind: bytes, **attrs: Any) -> tuple[tarfile.TarInfo, None]:
    return _info(name, kind, **attrs), None


def patch_header(data: bytes, offset: int, value: bytes, *, index: int, fix_sum: bool = True) -> bytes:
    """Overwrite bytes in the ``index``-th header block of a plain tar (checksum fixed unless asked)."""
    index -= 2 if LAYERS else 0  # a layer has no manifest and rootfs/ entries before
    headers, pos = [], 0
    while pos + 512 <= len(data) and data[pos : pos + 512] != bytes(512):
        headers.append(pos)
        size = int(data[pos + 124 : pos + 136].split(b"\0")[0].strip() or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    start = headers[index]
    block = bytearray(data[start : start + 512])
    block[offset : offset + len(value)] = value
    if fix_sum:
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
    return data[:start] + bytes(block) + data[start + 512 :]


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def bomb(size: int) -> bytes:
    """A small gzip holding a tar whose one file is ``size`` zero bytes."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w|") as tar,
    ):
        m = _info("manifest")
        m.size = len(MANIFEST)
        tar.addfile(m, io.BytesIO(MANIFEST))
        big = _info("rootfs/zeros")
        big.size = size

        class Zeros(io.RawIOBase):
            left = size

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
                n = min(len(buffer), self.left)
                buffer[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(big, io.BufferedReader(Zeros()))  # type: ignore[type-var]
    return out.getvalue()


# name → (make archive for an outside dir, words the error must contain)
CASES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "absolute-path": (lambda out: archive(file(str(out / "abs"))), "absolute path"),
    "dotdot-in-rootfs": (lambda out: archive(file("rootfs/../../escape")), "climbs out"),
    "dotdot-at-top": (lambda out: archive(file("../escape")), "climbs out"),
    "write-through-symlink": (
        lambda out: archive(
            entry("rootfs/link", tarfile.SYMTYPE, linkname=str(out)), file("rootfs/link/evil")
        ),
        "through the symlink",
    ),
    "write-through-relative-symlink": (
        lambda out: archive(
            entry("rootfs/up", tarfile.SYMTYPE, linkname="../../../../../../../../.."),
            file(f"rootfs/up{out}/evil"),
        ),
        "through the symlink",
    ),
    "symlink-planted-deep": (
        lambda out: archive(
            entry("rootfs/a", tarfile.DIRTYPE),
            entry("rootfs/a/b", tarfile.SYMTYPE, linkname=str(out)),
            file("rootfs/a/b/c/evil"),
        ),
        "through the symlink",
    ),
    "hardlink-outside-absolute": (
        lambda out: archive(entry("rootfs/x", tarfile.LNKTYPE, linkname=str(out / "victim"))),
        "absolute path",
    ),
    "hardlink-dotdot": (
        lambda out: archive(entry("rootfs/x", tarfile.LNKTYPE, linkname="rootfs/../../victim")),
        "climbs out",
    ),
    "hardlink-through-symlink": (
        lambda out: archive(
            entry("rootfs/l", tarfile.SYMTYPE, linkname=str(out)),
            entry("rootfs/x", tarfile.LNKTYPE, linkname="rootfs/l/victim"),
        ),
        "not a file extracted before",
    ),
    "hardlink-to-directory": (
        lambda out: archive(
            entry("rootfs/d", tarfile.DIRTYPE), entry("rootfs/x", tarfile.LNKTYPE, linkname="rootfs/d")
        ),
        "not a file extracted before",
    ),
    "hardlink-to-later-file": (
        lambda out: archive(entry("rootfs/x", tarfile.LNKTYPE, linkname="rootfs/y"), file("rootfs/y")),
        "not a file extracted before",
    ),
    "hardlink-to-manifest": (
        lambda out: archive(entry("rootfs/x", tarfile.LNKTYPE, linkname="manifest")),
        "outside the image's files",
    ),
    "block-device-outside-dev": (
        lambda out: archive(entry("rootfs/bin/sda", tarfile.BLKTYPE, devmajor=8)),
        "outside /dev",
    ),
    "char-device-outside-dev": (
        lambda out: archive(entry("rootfs/tmp/mem", tarfile.CHRTYPE, devmajor=1, devminor=1)),
        "outside /dev",
    ),
    "fifo-outside-dev": (lambda out: archive(entry("rootfs/etc/fifo", tarfile.FIFOTYPE)), "outside /dev"),
    "duplicate-file": (
        lambda out: archive(file("rootfs/a"), file("rootfs/a", b"second")),
        "duplicate entry",
    ),
    "duplicate-manifest": (lambda out: archive(file("manifest", b"{}")), "one regular file"),
    "file-then-child": (lambda out: archive(file("rootfs/a"), file("rootfs/a/b")), "through the file"),
    "symlink-over-directory": (
        lambda out: archive(
            entry("rootfs/d", tarfile.DIRTYPE), entry("rootfs/d", tarfile.SYMTYPE, linkname=str(out))
        ),
        "duplicate entry",
    ),
    "name-not-utf8": (
        lambda out: patch_header(archive(file("rootfs/aaaaaaaaaa")), 7, b"\xff\xfe", index=2),
        "not valid UTF-8",
    ),
    "name-with-nul-in-pax": (
        lambda out: archive(file("rootfs/x", pax_headers={"path": "rootfs/a\0b"})),
        "NUL",
    ),
    "oversized-pax-header": (
        lambda out: archive(file("rootfs/x", pax_headers={"comment": "x" * (2 << 20)})),
        "over the limit",
    ),
    "oversized-gnu-longname": (
        lambda out: archive(file("rootfs/" + "a/" * 3000 + "x"), fmt=tarfile.GNU_FORMAT),
        "longer than",
    ),
    "path-too-long": (lambda out: archive(file("rootfs/" + "d" * 5000)), "longer than"),
    "decompression-bomb": (lambda out: bomb(64 << 20), "limit"),
    "declared-size-bomb": (
        lambda out: patch_header(archive(file("rootfs/x")), 124, b"77777777777\0", index=2),
        "limit",
    ),
    "sparse-file": (lambda out: patch_header(archive(file("rootfs/x")), 156, b"S", index=2), "unsupported"),
    "bad-checksum": (
        lambda out: patch_header(archive(file("rootfs/x")), 0, b"rootfs/y", index=2, fix_sum=False),
        "checksum",
    ),
    "truncated": (lambda out: archive(file("rootfs/x", b"y" * 100_000))[:60_000], "truncated"),
    "unexpected-top-level": (lambda out: archive(file("etc/passwd")), "unexpected entry"),
    "rootfs-is-a-file": (lambda out: archive(file("rootfs"), base=False), "not a directory"),
    "manifest-is-a-symlink": (
        lambda out: archive(
            entry("manifest", tarfile.SYMTYPE, linkname="/etc/passwd"),
            entry("rootfs", tarfile.DIRTYPE),
            base=False,
        ),
        "one regular file",
    ),
    "not-an-archive": (lambda out: b"#!/bin/sh\nrm -rf /\n" * 100, "not an ACI"),
    "gzip-garbage": (lambda out: gz(archive(file("rootfs/x")))[:-40] + b"\0" * 40, "corrupt"),
}
