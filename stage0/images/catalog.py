"""Image operations behind ``nspod image …``: resolving references in the store, listing, removal,
garbage collection, export, extraction, rendering to a directory and verification."""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import shutil
import time
from dataclasses import dataclass

from stage0.errors import (
    ConflictError,
    FailedPreconditionError,
    ImageExistsError,
    InputError,
    InternalError,
)
from stage0.host.atomic import atomic_file
from stage0.images.aci.importer import import_stream
from stage0.images.fetch.policy import labels_match
from stage0.images.fetch.refs import RefKind, host_labels, parse_ref
from stage0.images.store.locks import remove_tree, try_lock, unlock_removing
from stage0.images.store.rows import ImageRow
from stage0.images.store.store import ImageNotFound, Store
from stage0.images.trust.keystore import Keystore


def resolve(store: Store, text: str, config_dirs: tuple[str, ...] = ()) -> list[ImageRow]:
    """Images a reference names in the store: one for an ID prefix, all matching for a name or an
    OCI reference (``config_dirs``: where registries.conf names the registry of short names)."""
    ref = parse_ref(text, is_file=lambda _: False)
    if ref.kind is RefKind.ID:
        return [store.by_prefix(ref.target)]
    if ref.kind is RefKind.OCI:
        rows = _by_oci_reference(store, ref.target, config_dirs)
    elif ref.kind is RefKind.NAME:
        rows = [
            r for r in store.index.by_name(ref.target) if labels_match(r.labels, ref.labels, host_labels())
        ]
    else:
        raise InputError(f"{text!r} is not an image ID, name or reference", hint="see 'nspod image list'")
    if not rows:
        raise ImageNotFound(f"no image {text} in the store")
    return rows


def resolve_one(store: Store, text: str, config_dirs: tuple[str, ...] = ()) -> ImageRow:
    rows = resolve(store, text, config_dirs)
    return rows[0]  # by_name orders the best match (latest, then newest) first


def _by_oci_reference(store: Store, text: str, config_dirs: tuple[str, ...]) -> list[ImageRow]:
    """The images pulled as ``text`` (the reference they record as their source); for a digest,
    also those of that repository pulled by a tag whose manifest has that digest."""
    from stage0.images.oci.convert import ac_identifier, oci_digest
    from stage0.images.oci.reference import default_registry, parse_oci_ref

    ref = parse_oci_ref(text, default_registry(config_dirs))
    rows = store.index.by_source(ref.canonical())
    if not rows and ref.digest:
        rows = [r for r in store.index.by_name(ac_identifier(ref.name)) if oci_digest(r) == ref.digest]
    return rows


def images_in_use(data_dir: str) -> set[str]:
    """IDs of images that prepared or running pods use (each pod directory lists them in ``images``)."""
    used: set[str] = set()
    for listing in glob.glob(os.path.join(data_dir, "pods", "*", "*", "images")):
        state = listing.split(os.sep)[-3]
        if state in ("embryo", "prepare", "prepared", "run"):
            with open(listing) as file:
                used.update(line.strip() for line in file if line.strip())
    return used | _kept_by_auto_update(data_dir)


def _kept_by_auto_update(data_dir: str) -> set[str]:
    """The current and previous images of pods that follow their tags (stage0/pods/autoupdate.py):
    the previous one is what a rollback starts."""
    kept: set[str] = set()
    for path in glob.glob(os.path.join(data_dir, "auto-update", "*.json")):
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError), open(path) as file:
            kept.update(str(i) for i in json.load(file).get("keep", []))
    return kept


# -- removal and gc ------------------------------------------------------------------------------------


def _in_use(data_dir: str, image_id: str) -> bool:
    return image_id in images_in_use(data_dir)


def remove_images(store: Store, data_dir: str, rows: list[ImageRow]) -> list[str]:
    in_use, kept = images_in_use(data_dir), _kept_by_auto_update(data_dir)
    for row in rows:
        if row.id in kept:
            raise FailedPreconditionError(
                f"image {row.short_id} ({row.name}) is kept by auto-update (a pod's current or previous)",
                hint="the next update of its tag lets the older one go; see 'nspod auto-update --dry-run'",
            )
        if row.id in in_use:
            raise FailedPreconditionError(
                f"image {row.short_id} ({row.name}) is used by a prepared or running pod",
                hint="remove the pod first ('nspod rm'), or let 'nspod gc' do it",
            )
    for row in rows:  # asked again once no pod being prepared holds it: it may list it now
        if not store.remove(row.id, keep=functools.partial(_in_use, data_dir, row.id)):
            raise ConflictError(
                f"image {row.short_id} ({row.name}) is used by a pod prepared meanwhile",
                hint="remove the pod first ('nspod rm'), or let 'nspod gc' do it",
            )
    remove_stale_trees(store)
    return [row.id for row in rows]


def remove_stale_trees(store: Store) -> list[str]:
    """Rendered trees that name an image no longer in the store."""
    known = store.index.ids()
    removed = []
    for name in os.listdir(store.paths.trees):
        tree = os.path.join(store.paths.trees, name)
        try:
            with open(os.path.join(tree, "images")) as file:
                ids = {line.strip() for line in file if line.strip()}
        except FileNotFoundError:
            ids = {""}
        if not ids <= known:
            with store.key_lock(name):
                remove_tree(tree)
            removed.append(name)
    return removed


def gc(store: Store, data_dir: str, grace: float, now: float | None = None) -> list[ImageRow]:
    """Remove images unused for ``grace`` seconds and not used by any pod; stale trees and downloads."""
    now = time.time() if now is None else now
    in_use = images_in_use(data_dir)
    doomed = [r for r in store.index.images() if r.last_used < now - grace and r.id not in in_use]

    def kept(image_id: str) -> bool:  # asked again once no pod being prepared holds it
        row = store.index.image(image_id)
        return row is None or row.last_used >= now - grace or _in_use(data_dir, image_id)

    doomed = [row for row in doomed if store.remove(row.id, keep=functools.partial(kept, row.id))]
    remove_stale_trees(store)
    store.remove_orphan_layers(now - grace)
    for path in glob.glob(os.path.join(store.paths.downloads, "*.part")):
        _remove_download(path, now - grace)
    return doomed


def _remove_download(part: str, before: float) -> None:
    """A partial download older than ``before``, unless a fetch holds it (fetcher.py's lock)."""
    lock = part.removesuffix(".part") + ".lock"
    fd = try_lock(lock, create=True)
    if fd is None:
        return  # being downloaded right now
    try:
        with contextlib.suppress(FileNotFoundError):
            if os.path.getmtime(part) < before:
                for leftover in (part, part + ".json"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(leftover)
    finally:
        unlock_removing(fd, lock)


# -- export, extract, render, verify ----------------------------------------------------------------


def export(store: Store, row: ImageRow, output: str, *, overwrite: bool) -> None:
    if row.is_oci:  # its layers merged into an ACI
        from stage0.images.oci import files

        files.export(store, row, output, overwrite=overwrite)
        return
    if os.path.lexists(output) and not overwrite:
        raise ImageExistsError(f"{output} already exists")
    try:
        with open(store.paths.blob(row.id), "rb") as blob, atomic_file(output) as out:
            shutil.copyfileobj(blob, out)
    except OSError as error:
        raise InputError(f"cannot write {output}: {error.strerror}") from None
    store.index.touch(row.id)
    signature = store.signature(row.id)
    if signature is not None:
        with open(output + ".asc", "wb") as file:
            file.write(signature)


def _empty_target(target: str) -> None:
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise InputError(
            f"{target} exists and is not an empty directory", hint="give a new or empty directory"
        )
    os.makedirs(target, exist_ok=True)


def extract(store: Store, row: ImageRow, target: str, *, rootfs_only: bool) -> None:
    """The image's own files (no dependencies), re-read from its blob with every safety check."""
    _empty_target(target)
    if row.is_oci:  # its layers, checked when stored, merged
        from stage0.images.oci import files

        files.render(store, row, target, rootfs_only=rootfs_only)
        return
    rootfs = target if rootfs_only else os.path.join(target, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    with store.open_blob(row.id) as blob:
        imported = import_stream(blob, blob=None, rootfs=rootfs, limits=store.limits, name=row.short_id)
    if not rootfs_only:
        with open(os.path.join(target, "manifest"), "wb") as file:
            file.write(imported.manifest_bytes)


def copy_rendered(rootfs: str, manifest: bytes, target: str, *, rootfs_only: bool) -> None:
    _empty_target(target)
    destination = target if rootfs_only else os.path.join(target, "rootfs")
    os.makedirs(destination, exist_ok=True)
    # cp -a keeps owners, modes, times, xattrs and hard links within the tree
    from stage0.host.runner import run

    run(["cp", "-a", "--", rootfs + "/.", destination + "/"], what=f"copying the rendered image to {target}")
    if not rootfs_only:
        with open(os.path.join(target, "manifest"), "wb") as file:
            file.write(manifest)


@dataclass(frozen=True, slots=True)
class Verification:
    row: ImageRow
    signer: str | None


def verify(store: Store, keys: Keystore, row: ImageRow) -> Verification:
    """Re-hash the stored blob against its ID, and re-check its signature with today's trust."""
    if row.is_oci:  # its config against its ID, its layers present
        from stage0.images.oci import files

        files.verify(store, row)
        return Verification(row, row.signer)
    with store.open_blob(row.id) as blob:
        imported = import_stream(blob, blob=None, rootfs=None, limits=store.limits, name=row.short_id)
    if imported.image_id != row.id:
        raise InternalError(
            f"image {row.short_id} is damaged: its blob hashes to {imported.image_id[:39]}",
            hint="remove it ('nspod image rm') and fetch it again",
        )
    signature = store.signature(row.id)
    if signature is None:
        return Verification(row, None)
    from stage0.images.trust.verify import verify_file  # pysequoia: only when an image is verified

    verified = verify_file(store.paths.blob(row.id), signature, keys.keys_for(row.name), what=row.short_id)
    return Verification(row, ", ".join(verified.user_ids) or verified.fingerprint)


def display_name(row: ImageRow) -> str:
    """NAME:VERSION; for an OCI image from a registry, the repository and tag it came from."""
    if row.is_oci and row.source.startswith("docker://"):
        return row.source.removeprefix("docker://")
    version = row.labels.get("version")
    return f"{row.name}:{version}" if version else row.name
