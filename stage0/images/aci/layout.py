"""Image layouts on disk: a directory holding exactly ``manifest`` and ``rootfs/``."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from stage0.errors import ImageError, InputError
from stage0.images.aci.extract import MANIFEST, ROOTFS
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.image import ImageManifest


@dataclass(frozen=True, slots=True)
class Layout:
    path: str
    manifest: ImageManifest

    @property
    def manifest_path(self) -> str:
        return os.path.join(self.path, MANIFEST)

    @property
    def rootfs(self) -> str:
        return os.path.join(self.path, ROOTFS)


def check_layout(path: str) -> Layout:
    """Validate an image layout directory and parse its manifest."""
    try:
        entries = sorted(os.listdir(path))
    except NotADirectoryError:
        raise InputError(
            f"{path}: not a directory",
            hint="pass an image layout: a directory with 'manifest' and 'rootfs/'",
        ) from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    extra = [e for e in entries if e not in (MANIFEST, ROOTFS)]
    if extra:
        raise ImageError(
            f"{path}: unexpected entry {extra[0]!r} in image layout",
            hint="a layout holds only 'manifest' and 'rootfs/'; move anything else out",
        )
    manifest_path, rootfs = os.path.join(path, MANIFEST), os.path.join(path, ROOTFS)
    if MANIFEST not in entries or not stat.S_ISREG(os.lstat(manifest_path).st_mode):
        raise ImageError(f"{path}: no 'manifest' file in image layout")
    if ROOTFS not in entries or not stat.S_ISDIR(os.lstat(rootfs).st_mode):
        raise ImageError(
            f"{path}: no 'rootfs' directory in image layout",
            hint="create it (it may be empty) or point at the right directory",
        )
    with open(manifest_path, "rb") as file:
        manifest = parse_image_manifest(file.read(), manifest_path)
    return Layout(path, manifest)
