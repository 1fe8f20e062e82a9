"""The image store under ``--dir`` (default /var/lib/nspod)::

    images/index.db              SQLite index (WAL)
    images/blobs/<id>            each ACI exactly as received (so exports still match signatures)
    images/blobs/<id>.asc        its detached signature, when it came with one
    images/layers/<id>/          the image's own manifest and extracted rootfs/
    images/trees/deps-<hash>/    rendered trees of images with dependencies (see render.py)
    images/tmp/                  workspaces of running imports (crash leftovers swept at open)
    images/downloads/            partial downloads kept for resuming
    images/locks/                per-key lock files
    images/oci/<diff ID>/        each OCI layer, extracted once (an overlayfs layer; see oci.py)

An OCI image is a row whose blob is its OCI manifest, whose layers/<id>/ holds its appc
manifest and OCI config, and whose layers are listed, bottom first, in the index.

Import order: blob and tree are written in a private workspace, the blob is fsynced, then under
the image's lock both are renamed into place and only then is the index row written.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO

from stage0.errors import Error, ErrorKind, InputError, PermissionDeniedError, space_on
from stage0.host.access import GROUP, is_reader
from stage0.images.aci.importer import Imported, import_stream
from stage0.images.aci.tarstream import Limits, Readable
from stage0.images.store.index import Index
from stage0.images.store.locks import (
    Workspace,
    key_locked,
    remove_tree,
    sweep,
    sweep_locks,
    try_lock,
    unlock_removing,
)
from stage0.images.store.rows import ImageRow

DEFAULT_LIMITS = Limits()
USED_RESOLUTION = 60.0  # seconds: a last-used time this recent is not written again


class ImageNotFound(Error):
    kind = ErrorKind.NOT_FOUND
    hint = "see 'nspod image list', or fetch it with 'nspod fetch'"


class AmbiguousImage(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "give more of the ID, or a name with labels (name:version,os=linux)"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StorePaths:
    """Where each part of the store lives (see the module docstring)."""

    SUBDIRS = ("blobs", "layers", "trees", "tmp", "downloads", "locks", "oci")

    def __init__(self, root: str) -> None:
        self.root = root
        self.index = os.path.join(root, "index.db")
        self.blobs, self.layers, self.trees, self.tmp, self.downloads, self.locks, self.oci = (
            os.path.join(root, sub) for sub in self.SUBDIRS
        )

    def oci_layer(self, diff_id: str) -> str:
        """An OCI layer's directory, by its diff ID (``sha256:…`` → ``sha256-…``)."""
        return os.path.join(self.oci, diff_id.replace(":", "-"))

    def blob(self, image_id: str) -> str:
        return os.path.join(self.blobs, image_id)

    def layer(self, image_id: str) -> str:
        return os.path.join(self.layers, image_id)

    def lock(self, key: str) -> str:
        return os.path.join(self.locks, key[:71] + ".lock")


class Store:
    """Open with :meth:`open`; the constructor does no I/O."""

    def __init__(self, data_dir: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.paths = StorePaths(os.path.join(data_dir, "images"))
        self.limits = limits
        self._index: Index | None = None
        self._held = ExitStack()  # images this process uses, kept from removal until close()

    @classmethod
    def open(cls, data_dir: str, limits: Limits = DEFAULT_LIMITS) -> Store:
        store = cls(data_dir, limits)
        if is_reader() and not os.access(data_dir, os.W_OK):  # group nspod's: nothing written
            index = store.paths.index
            if os.path.exists(store.paths.root) and not os.access(store.paths.root, os.R_OK | os.X_OK):
                raise PermissionDeniedError(
                    f"cannot read the image store {store.paths.root}: permission denied",
                    hint=f"run nspod as root, or join group {GROUP}",
                )
            store._index = Index(index if os.path.exists(index) else ":memory:", read_only=True)
            return store
        try:
            # what group nspod reads is 0750 (stage0/host/access.py), the images themselves 0700
            os.makedirs(data_dir, mode=0o750, exist_ok=True)
            os.makedirs(store.paths.root, mode=0o750, exist_ok=True)
            for sub in StorePaths.SUBDIRS:
                os.makedirs(os.path.join(store.paths.root, sub), mode=0o700, exist_ok=True)
        except OSError as error:
            raise InputError(
                f"cannot create the store in {data_dir}: {error.strerror}",
                hint="run as root, or pass --dir DIR you can write",
            ) from None
        store._index = Index(store.paths.index)
        store.recover()
        return store

    @property
    def index(self) -> Index:
        assert self._index is not None, "Store.open() first"
        return self._index

    def close(self) -> None:
        self._held.close()
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- crash recovery ----------------------------------------------------------------------------

    def recover(self) -> None:
        """Remove what a crashed process left: its workspaces, lock files, and blobs or layers
        without a row."""
        sweep(self.paths.tmp)
        sweep_locks(self.paths.locks)
        sweep_locks(self.paths.downloads)
        layers = self.index.layer_ids()
        for name in os.listdir(self.paths.oci):
            diff_id = name.replace("-", ":", 1)
            if diff_id not in layers:
                self._sweep(
                    os.path.join(self.paths.oci, name), name, functools.partial(self.index.layer, diff_id)
                )
        known = self.index.ids()
        for directory in (self.paths.blobs, self.paths.layers):
            for name in os.listdir(directory):
                image_id = name.removesuffix(".asc")
                if image_id not in known:
                    self._sweep(
                        os.path.join(directory, name),
                        image_id,
                        functools.partial(self.index.image, image_id),
                    )

    def _sweep(self, path: str, key: str, row: Callable[[], object]) -> None:
        """Remove ``path`` if it still has no row, unless an import holds ``key``'s lock (it is
        committing it right now)."""
        fd = try_lock(self.paths.lock(key), create=True)
        if fd is None:
            return
        try:
            if row() is None:
                remove_tree(path)
        finally:
            unlock_removing(fd, self.paths.lock(key))

    @contextmanager
    def key_lock(self, key: str, *, shared: bool = False) -> Iterator[None]:
        with key_locked(self.paths.lock(key), shared=shared):
            yield

    # -- import ---------------------------------------------------------------------------------------

    def import_file(
        self,
        path: str,
        *,
        source: str | None = None,
        signature: bytes | None = None,
        signer: str | None = None,
        latest: bool = False,
    ) -> ImageRow:
        try:
            file = open(path, "rb")  # noqa: SIM115
        except OSError as error:
            raise InputError(f"cannot read {path}: {error.strerror}") from None
        with file:
            return self.import_stream(
                file,
                source=source or os.path.abspath(path),
                signature=signature,
                signer=signer,
                latest=latest,
                name=path,
            )

    def import_stream(
        self,
        source_stream: Readable,
        *,
        source: str,
        signature: bytes | None = None,
        signer: str | None = None,
        latest: bool = False,
        name: str = "image",
    ) -> ImageRow:
        # space is measured before the workspace goes: what the import found when it failed
        with Workspace(self.paths.tmp) as work, space_on(self.paths.root):
            blob_path = os.path.join(work.path, "blob")
            layer = os.path.join(work.path, "layer")
            os.mkdir(layer, 0o700)
            os.mkdir(os.path.join(layer, "rootfs"), 0o755)
            with open(blob_path, "wb") as blob:
                imported = import_stream(
                    source_stream,
                    blob=blob,
                    rootfs=os.path.join(layer, "rootfs"),
                    limits=self.limits,
                    name=name,
                )
                blob.flush()
                os.fsync(blob.fileno())
            with open(os.path.join(layer, "manifest"), "wb") as file:
                file.write(imported.manifest_bytes)
            if signature is not None:
                with open(blob_path + ".asc", "wb") as file:
                    file.write(signature)
                    os.fsync(file.fileno())
            return self._commit(imported, work.path, source=source, signer=signer, latest=latest)

    def _commit(
        self, imported: Imported, work: str, *, source: str, signer: str | None, latest: bool
    ) -> ImageRow:
        image_id = imported.image_id
        with self.key_lock(image_id):
            existing = self.index.image(image_id)
            if existing is not None:  # someone imported it first: keep theirs, note what we learned
                if signer or latest:
                    self.index.set_signer(image_id, signer, latest=latest)
                    if signer and os.path.exists(os.path.join(work, "blob.asc")):
                        os.replace(os.path.join(work, "blob.asc"), self.paths.blob(image_id) + ".asc")
                return self.index.image(image_id) or existing
            for stale in (
                self.paths.blob(image_id),
                self.paths.blob(image_id) + ".asc",
                self.paths.layer(image_id),
            ):
                remove_tree(stale)  # a crash after rename, before the row: redo it
            if os.path.exists(os.path.join(work, "blob.asc")):
                os.replace(os.path.join(work, "blob.asc"), self.paths.blob(image_id) + ".asc")
            os.replace(os.path.join(work, "blob"), self.paths.blob(image_id))
            os.rename(os.path.join(work, "layer"), self.paths.layer(image_id))
            _fsync_dir(self.paths.blobs)
            _fsync_dir(self.paths.layers)
            now = time.time()
            manifest = imported.manifest
            row = ImageRow(
                id=image_id,
                name=str(manifest.name),
                labels={str(x.name): x.value for x in manifest.labels},
                manifest=imported.manifest_bytes,
                compression=str(imported.compression),
                size=imported.raw_size,
                tree_size=imported.tree_size,
                import_time=now,
                last_used=now,
                source=source,
                signer=signer,
                latest=latest,
            )
            self.index.add_image(row)
            return row

    # -- lookup ------------------------------------------------------------------------------------

    def by_id(self, image_id: str) -> ImageRow:
        row = self.index.image(image_id)
        if row is None:
            raise ImageNotFound(f"no image {image_id} in the store")
        return row

    def by_prefix(self, prefix: str) -> ImageRow:
        rows = self.index.by_prefix(prefix)
        if not rows:
            raise ImageNotFound(f"no image with ID {prefix} in the store")
        if len(rows) > 1:
            raise AmbiguousImage(f"ID {prefix} matches {len(rows)} images")
        return rows[0]

    def find(self, name: str, labels: dict[str, str]) -> ImageRow | None:
        """The best image called ``name`` whose labels include ``labels`` (rkt's rules: a requested
        version must match; without one, the image marked latest, else the newest import)."""
        for row in self.index.by_name(name):
            if all(row.labels.get(k) == v for k, v in labels.items()):
                return row
        return None

    def remove_orphan_layers(self, before: float) -> None:
        """OCI layers no image lists, stored before ``before`` (a pull that died before storing
        its image; a younger one may belong to a pull still running)."""
        for diff_id in self.index.orphan_layers(before):
            with self.key_lock(diff_id.replace(":", "-")):
                if self.index.remove_orphan_layer(diff_id):
                    remove_tree(self.paths.oci_layer(diff_id))

    def oci_layers(self, image_id: str) -> tuple[str, ...]:
        """An OCI image's layer directories, top first (none for an ACI)."""
        return tuple(self.paths.oci_layer(r.diff_id) for r in reversed(self.index.image_layers(image_id)))

    def mark_used(self, image_ids: Iterable[str]) -> None:
        """Images a pod is made of (run, prepare, run-prepared, app add): gc keeps what is used.
        Within a minute of the last mark nothing is written, so repeated runs stay readers."""
        self.index.touch(*image_ids, resolution=USED_RESOLUTION)

    def open_blob(self, image_id: str) -> BinaryIO:
        self.index.touch(image_id)
        return open(self.paths.blob(image_id), "rb")

    def signature(self, image_id: str) -> bytes | None:
        try:
            with open(self.paths.blob(image_id) + ".asc", "rb") as file:
                return file.read()
        except FileNotFoundError:
            return None

    # -- removal ---------------------------------------------------------------------------------------

    @staticmethod
    def _use_key(image_id: str) -> str:
        return "use-" + image_id.removeprefix("sha512-")

    def hold(self, image_id: str) -> bool:
        """Keep the image from removal until this store is closed (a pod being prepared uses it,
        and lists it in its directory before then); whether it is still there to be held."""
        self._held.enter_context(self.key_lock(self._use_key(image_id), shared=True))
        return self.index.image(image_id) is not None

    def remove(self, image_id: str, keep: Callable[[], bool] = lambda: False) -> bool:
        """Remove the image unless ``keep()``, asked once no one holds it; whether it was removed.
        The row goes first (a crash then leaves an orphan that recover() sweeps), then the files."""
        with self.key_lock(self._use_key(image_id)):  # waits for the pods being prepared with it
            if keep():
                return False
            with self.key_lock(image_id):
                unused = self.index.remove_image(image_id)
                for path in (
                    self.paths.blob(image_id),
                    self.paths.blob(image_id) + ".asc",
                    self.paths.layer(image_id),
                ):
                    remove_tree(path)
            for diff_id in unused:  # shared layers stay while another image lists them
                with self.key_lock(diff_id.replace(":", "-")):
                    if self.index.layer(diff_id) is None:
                        remove_tree(self.paths.oci_layer(diff_id))
        return True
