"""An OCI image's files outside a pod, for the ``image`` verbs: its layers merged into one tree as
overlayfs would show them (``render`` and ``extract``), that tree as an ACI (``export``), and a
check of what the store holds (``verify``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat

from stage0.errors import InternalError
from stage0.images.store.locks import Workspace
from stage0.images.store.rows import ImageRow
from stage0.images.store.store import Store
from stage0.images.tree import OPAQUE_XATTR


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_meta(source: str, target: str, st: os.stat_result) -> None:
    os.lchown(target, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_entry(source: str, target: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(source, target, follow_symlinks=False)
    else:  # devices and fifos (refused outside /dev when the layer was stored)
        os.mknod(target, st.st_mode, st.st_rdev)
    _copy_meta(source, target, st)


def merge_layers(layers: tuple[str, ...], target: str) -> None:
    """Copy ``layers`` (top first, as Store.oci_layers lists them) into the empty directory
    ``target``, bottom up: a whiteout removes what lies below, an opaque directory hides it."""
    for layer in reversed(layers):
        directories = []
        for here, dirs, files in os.walk(layer):
            rel = os.path.relpath(here, layer)
            into = target if rel == "." else os.path.join(target, rel)
            if rel != ".":
                opaque = False
                with contextlib.suppress(OSError):
                    opaque = os.getxattr(here, OPAQUE_XATTR, follow_symlinks=False) == b"y"
                if opaque or not os.path.isdir(into) or os.path.islink(into):
                    _remove(into)
                    os.mkdir(into, 0o700)
                directories.append((here, into))
            for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(here, d)))]:
                source, destination = os.path.join(here, name), os.path.join(into, name)
                st = os.lstat(source)
                _remove(destination)
                if not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0):  # else a whiteout: gone
                    _copy_entry(source, destination, st)
        for here, into in reversed(directories):  # after their children: times stay
            _copy_meta(here, into, os.lstat(here))


def render(store: Store, row: ImageRow, target: str, *, rootfs_only: bool) -> None:
    destination = target if rootfs_only else os.path.join(target, "rootfs")
    os.makedirs(destination, exist_ok=True)
    merge_layers(store.oci_layers(row.id), destination)
    if not rootfs_only:
        with open(os.path.join(target, "manifest"), "wb") as file:
            file.write(row.manifest)
    store.index.touch(row.id)


def export(store: Store, row: ImageRow, output: str, *, overwrite: bool) -> str:
    """The image as an ACI (its merged layers and its appc manifest); the ACI's ID."""
    from stage0.images.aci.build import build_aci

    with Workspace(store.paths.tmp) as work:
        layout = os.path.join(work.path, "layout")
        render(store, row, layout, rootfs_only=False)
        return build_aci(layout, output, overwrite=overwrite)


def verify(store: Store, row: ImageRow) -> None:
    """The config names the image (its SHA-512 is the ID) and every layer it lists is stored."""
    try:
        with open(os.path.join(store.paths.layer(row.id), "config.json"), "rb") as file:
            config = file.read()
    except OSError:
        config = b""
    missing = [layer for layer in store.oci_layers(row.id) if not os.path.isdir(layer)]
    if "sha512-" + hashlib.sha512(config).hexdigest() != row.id or missing or not store.oci_layers(row.id):
        raise InternalError(
            f"image {row.short_id} is damaged: "
            + (f"{len(missing)} layer(s) missing" if missing else "its config does not match its ID"),
            hint="remove it ('nspod image rm') and fetch it again",
        )
