"""An OCI image from a registry into the store: the manifest (an index resolved to this host's
platform), the config, then each layer the store lacks — downloaded in parallel, checked against
its digest and diff ID as it streams, and extracted once into a directory of its own that every
image listing it shares. A re-pull of an unchanged tag costs one HEAD request.

A layer's compressed bytes are kept in ``downloads/`` while it streams, so an interrupted pull
resumes where it stopped (HTTP Range); they are dropped once the layer is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from stage0.errors import Error, UsageError, space_on
from stage0.images.aci.tarstream import Readable
from stage0.images.fetch.http import FetchError
from stage0.images.fetch.policy import Progress as Told
from stage0.images.fetch.policy import Transfer
from stage0.images.oci.allocator import buffers_kept
from stage0.images.oci.convert import image_manifest
from stage0.images.oci.kept import KeptCopy, resume_offset
from stage0.images.oci.layer import extract_layer
from stage0.images.oci.manifest import (
    LAYERS,
    Descriptor,
    ImageConfig,
    Index,
    ManifestError,
    choose,
    parse_config,
    parse_document,
)
from stage0.images.oci.pipeline import Chunks
from stage0.images.oci.reference import OciRef
from stage0.images.store.locks import Workspace, remove_tree
from stage0.images.store.rows import ImageRow, LayerRow, RemoteRow
from stage0.images.store.store import Store
from stage0.images.tree import LayeredTree

PARALLEL = 4


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"bad platform {text!r}", hint="write OS/ARCH[/VARIANT], e.g. linux/arm64/v8")
        return cls(*parts)


class Blob(Protocol):
    status: int

    def chunks(self, size: int = ...) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class Source(Protocol):
    """Where an image's documents and blobs come from: a registry, or a layout or archive on disk
    (stage0/images/oci/local.py)."""

    remote: bool  # a registry: blobs are kept while they stream, to resume

    def manifest_digest(self, reference: str) -> str | None: ...

    def manifest(self, reference: str) -> tuple[bytes, str, str]: ...

    def small_blob(self, digest: str) -> bytes: ...

    def blob(self, digest: str, offset: int = 0) -> Blob: ...


def remote_key(ref: OciRef, platform: Platform) -> str:
    """What the store remembers a pull by: the reference, and the platform an index resolved to."""
    return (
        f"{ref.canonical()}#{'/'.join(filter(None, (platform.os, platform.architecture, platform.variant)))}"
    )


class Progress:
    """All the layers streaming at once, told as one transfer: bytes so far of the total, at most
    ten times a second (the layer threads add, one at a time)."""

    def __init__(self, what: str, total: int, tell: Told | None) -> None:
        self.what, self.total, self.tell, self.done = what, total, tell, 0
        self._lock = threading.Lock()
        self._told = 0.0

    def add(self, count: int) -> None:
        if self.tell is None:
            return
        with self._lock:
            self.done += count
            now = time.monotonic()
            if now - self._told >= 0.1 or self.done >= self.total:
                self._told = now
                self.tell(Transfer(self.what, self.done, self.total, layers=True))

    def finish(self) -> None:
        if self.tell is not None:
            self.tell(Transfer(self.what, self.done, self.total, finished=True, layers=True))


class Resumable:
    """The blob's bytes kept so far, then the rest from the registry, copied to the part file."""

    def __init__(self, registry: Source, digest: str, part: str, progress: Progress) -> None:
        self._progress = progress
        have = resume_offset(part)
        self._reply = registry.blob(digest, have)
        if have and self._reply.status != 206:  # the server starts over: so do we
            have = 0
        self._kept: BinaryIO | None = open(part, "rb") if have else None  # noqa: SIM115
        self._limit = have
        self._out = KeptCopy(part, have)
        self._rest = Chunks(self._reply.chunks())

    def read(self, size: int = -1, /) -> bytes:
        if self._kept is not None:
            data = self._kept.read(min(size, self._limit) if size >= 0 else self._limit)
            self._limit -= len(data)
            if data:
                return data
            self._kept.close()
            self._kept = None
        data = self._rest.read(size)
        self._out.write(data)
        self._progress.add(len(data))
        return data

    def drop(self) -> None:
        """The kept copy is about to be deleted: what is queued for it is not written."""
        self._out.discard()

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
        try:
            self._out.close()
        finally:
            self._reply.close()


def _layer(store: Store, registry: Source, layer: Descriptor, diff_id: str, progress: Progress) -> LayerRow:
    """The layer in the store: there already, or fetched and extracted now (once, under its lock).
    Runs in a worker thread (the index gives each thread its own connection)."""
    key = diff_id.replace(":", "-")
    with store.key_lock(key):
        row = store.index.layer(diff_id)
        if row is not None and os.path.isdir(store.paths.oci_layer(diff_id)):
            return row
        part = os.path.join(store.paths.downloads, layer.digest.replace(":", "-") + ".part")
        with Workspace(store.paths.tmp) as work, space_on(store.paths.root):
            root = os.path.join(work.path, "layer")
            os.mkdir(root, 0o755)
            source: Resumable | Streamed = (
                Resumable(registry, layer.digest, part, progress)
                if registry.remote
                else Streamed(registry.blob(layer.digest))
            )
            try:
                done = extract_layer(
                    source, compression=LAYERS[layer.media_type], root=root, digest=layer.digest,
                    diff_id=diff_id, limits=store.limits,
                )  # fmt: skip
                source.drop()  # stored: the kept copy goes below, unfinished writes with it
            except Error:
                source.drop()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part)  # what was kept is what failed: start over next time
                raise
            finally:
                source.close()
            remove_tree(store.paths.oci_layer(diff_id))
            os.rename(root, store.paths.oci_layer(diff_id))
        row = LayerRow(diff_id, layer.digest, done.size, done.tree_size, time.time())
        store.index.add_layer(row)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        return row


class Streamed(Chunks):
    def __init__(self, blob: Blob) -> None:
        super().__init__(blob.chunks())
        self.close = blob.close

    def drop(self) -> None:
        """Nothing is kept from a local source."""


def _primary_group(layers: list[str]) -> Callable[[str], str | None]:
    tree = LayeredTree(tuple(reversed(layers)))
    return lambda user: None if (gid := tree.primary_group(user)) is None else str(gid)


def pull(
    store: Store,
    registry: Source,
    ref: OciRef,
    platform: Platform,
    *,
    say: Callable[[str], None],
    latest: bool = True,
    verify: Callable[[str], str | None] = lambda digest: None,
    progress: Told | None = None,
) -> ImageRow:
    """``verify``: checks the digest the reference names before anything else is downloaded;
    returns the signer to record (None: not verified)."""
    url = ref.canonical()
    remote = store.index.remote(remote_key(ref, platform))
    if remote is not None and store.index.image(remote.image_id) is not None:
        current = ref.digest or registry.manifest_digest(ref.reference)
        if current and current == remote.etag:
            return store.by_id(remote.image_id)
    body, media, digest = registry.manifest(ref.reference)
    signer = verify(digest)
    document = parse_document(body, media)
    if isinstance(document, Index):
        chosen = choose(document, platform.os, platform.architecture, platform.variant)
        body, media, _ = registry.manifest(chosen.digest)
        document = parse_document(body, media)
        if isinstance(document, Index):
            raise ManifestError(f"{url}: an index inside an index")
    config_bytes = registry.small_blob(document.config.digest)
    config = parse_config(config_bytes)
    if len(config.diff_ids) != len(document.layers):
        raise ManifestError(f"{url}: {len(document.layers)} layers but {len(config.diff_ids)} diff IDs")
    # an appc image ID (sha512 of the config, which names every layer by its diff ID): pod
    # manifests and every nspod verb take it like an ACI's
    image_id = "sha512-" + hashlib.sha512(config_bytes).hexdigest()
    if store.index.image(image_id) is None:
        missing = [
            (layer, diff) for layer, diff in zip(document.layers, config.diff_ids, strict=True)
            if store.index.layer(diff) is None
        ]  # fmt: skip
        verb = "Downloading" if registry.remote else "Importing"
        say(f"{verb} {len(missing)} of {len(document.layers)} layers of {url}")
        shown = Progress(url, sum(layer.size for layer, _ in missing), progress if registry.remote else None)
        with buffers_kept(), ThreadPoolExecutor(min(PARALLEL, max(1, len(missing)))) as pool:
            # largest first: the small ones fill the gaps instead of one big layer running alone at the end
            largest = sorted(missing, key=lambda pair: -pair[0].size)
            futures = [pool.submit(_layer, store, registry, layer, diff, shown) for layer, diff in largest]
            try:
                for future in futures:
                    future.result()
            finally:
                shown.finish()
        remote_row = RemoteRow(remote_key(ref, platform), image_id, digest, 0, time.time())
        if _commit(store, image_id, ref, config, body, config_bytes, digest, latest=latest, signer=signer,
                   remote=remote_row):  # fmt: skip
            return store.by_id(image_id)  # its remote row written with it
    elif signer:
        store.index.set_signer(image_id, signer, latest=latest)
    store.index.set_remote(RemoteRow(remote_key(ref, platform), image_id, digest, 0, time.time()))
    return store.by_id(image_id)


def _commit(
    store: Store,
    image_id: str,
    ref: OciRef,
    config: ImageConfig,
    manifest: bytes,
    config_bytes: bytes,
    digest: str,
    *,
    latest: bool,
    signer: str | None,
    remote: RemoteRow,
) -> bool:
    """Whether the image was stored now (with ``remote``), not by another process meanwhile."""
    layers = [store.paths.oci_layer(d) for d in config.diff_ids]
    appc = image_manifest(
        config, name=ref.name, version=ref.tag or digest.replace(":", "-")[:19], digest=digest,
        primary_group=_primary_group(layers),
    )  # fmt: skip
    appc_bytes = json.dumps(appc, indent=2).encode()
    with Workspace(store.paths.tmp) as work, space_on(store.paths.root), store.key_lock(image_id):
        if store.index.image(image_id) is not None:
            return False
        home = os.path.join(work.path, "layer")
        os.mkdir(home, 0o755)
        for name, data in (("manifest", appc_bytes), ("config.json", config_bytes)):
            with open(os.path.join(home, name), "wb") as file:
                file.write(data)
        with open(os.path.join(work.path, "blob"), "wb") as file:
            file.write(manifest)
            os.fsync(file.fileno())
        for stale in (store.paths.blob(image_id), store.paths.layer(image_id)):
            remove_tree(stale)
        os.replace(os.path.join(work.path, "blob"), store.paths.blob(image_id))
        os.rename(home, store.paths.layer(image_id))
        rows = [store.index.layer(d) for d in config.diff_ids]
        if any(r is None for r in rows):
            raise FetchError(f"{ref.canonical()}: a layer went missing while the image was stored")
        now = time.time()
        labels = {str(x["name"]): str(x["value"]) for x in appc["labels"]}
        row = ImageRow(
            id=image_id, name=str(appc["name"]), labels=labels, manifest=appc_bytes, compression="oci",
            size=sum(r.size for r in rows if r), tree_size=sum(r.tree_size for r in rows if r),
            import_time=now, last_used=now, source=ref.canonical(), signer=signer, latest=latest,
        )  # fmt: skip
        store.index.add_image(row, layers=config.diff_ids, remote=remote)
        return True


__all__ = ["Platform", "Readable", "pull"]
