"""CRI v1 ``ImageService`` on nspod's OCI store: PullImage (with the kubelet's auth config),
ListImages, ImageStatus (verbose: the image's config), RemoveImage, ImageFsInfo.

Trust: a kubelet cannot say ``--insecure-options=image``, so a CRI pull follows nspod.conf's
``[cri]`` policy — by default podman's default policy (an image is verified wherever ``nspod
trust`` holds a cosign key for its prefix, and taken unsigned elsewhere); ``require-signatures =
true`` refuses every image no trusted key verifies. Registries, mirrors and insecure hosts are
registries.conf's, as for ``nspod fetch``. Credentials of an auth config are used for that pull
only and never written.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from stage0.api.images import pull, remove_image
from stage0.cri.image_catalog import Catalog, CriImage, normalize
from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.cri.status import answering
from stage0.errors import Error, ErrorKind, InternalError, UsageError, kind_of
from stage0.images.fetch.auth import Credentials
from stage0.images.fetch.policy import Report
from stage0.images.store.store import Store
from stage0.options import GlobalOptions

log = logging.getLogger("nspod.cri.images")
FS_INFO_TTL = 10.0  # seconds a measure of the store's disk use is served again (kubelet polls it)


@dataclass(frozen=True, slots=True)
class PullSettings:
    require_signatures: bool = False


def pull_settings(options: GlobalOptions) -> PullSettings:
    """``[cri] require-signatures`` of nspod.conf (the local configuration over the system's)."""
    valid = lambda value: isinstance(value, bool)  # noqa: E731
    required = options.conf(
        "cri", "require-signatures", False, valid, hint="[cri] require-signatures = true|false"
    )
    return PullSettings(require_signatures=required)


def credentials(auth: api_pb2.AuthConfig | None) -> Credentials | None:
    """An auth config as the credentials of one pull (None: those stored for the registry)."""
    if auth is None:
        return None
    if auth.registry_token:
        return Credentials(f"Bearer {auth.registry_token}")
    if auth.identity_token:
        raise UsageError(
            "identity tokens (OAuth2 refresh tokens) are not supported yet",
            hint="give a username and password, or a registry token",
        )
    if auth.username:
        pair = f"{auth.username}:{auth.password}".encode()
        return Credentials("Basic " + base64.b64encode(pair).decode())
    if auth.auth:
        try:
            user, colon, _ = base64.b64decode(auth.auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, colon = "", ""
        if not colon or not user:
            raise UsageError("the auth config's auth is not base64 of user:password")
        return Credentials("Basic " + auth.auth)
    return None


def message(view: CriImage) -> api_pb2.Image:
    image = api_pb2.Image(
        id=view.id, repo_tags=view.repo_tags, repo_digests=view.repo_digests, size=view.size,
        username=view.username,
    )  # fmt: skip
    if view.uid is not None:
        image.uid.value = view.uid
    return image


def verbose_info(view: CriImage) -> dict[str, str]:
    """What ``crictl inspecti`` shows besides the image: its config, nspod's ID, source and signer."""
    info: dict[str, Any] = {"imageSpec": view.config, "nspodId": view.store_id, "source": view.source}
    info["signer"] = view.signer or ""
    return {"info": json.dumps(info)}


def disk_use(root: str) -> tuple[int, int]:
    """Bytes allocated and inodes under ``root`` (hard links counted once)."""
    used, seen = 0, set()
    stack = [root]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:  # removed while we walked
            continue
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.st_ino in seen:
                continue
            seen.add(stat.st_ino)
            used += stat.st_blocks * 512
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
    return used, len(seen)


class ImageService(api_pb2_grpc.ImageServiceServicer):
    def __init__(self, options: GlobalOptions) -> None:
        self.options = options
        self._configs: dict[str, tuple[str, dict[str, Any]]] = {}  # immutable: kept across requests
        self._fs_lock = threading.Lock()
        self._fs_info: tuple[float, int, int] | None = None

    @contextmanager
    def _store(self, context: grpc.ServicerContext) -> Iterator[Store]:
        """A store of this request's own: its index connection is not shared between threads."""
        from stage0.context import open_store

        with open_store(self.options) as store:
            yield store

    @answering
    def ListImages(self, request: api_pb2.ListImagesRequest, context: grpc.ServicerContext) -> Any:
        with self._store(context) as store:
            catalog = Catalog(store, self._configs)
            wanted = request.filter.image.image if request.HasField("filter") else ""
            if wanted:
                found = catalog.find(wanted)
                views = [found] if found else []
            else:
                views = catalog.images()
            return api_pb2.ListImagesResponse(images=[message(v) for v in views])

    @answering
    def ImageStatus(self, request: api_pb2.ImageStatusRequest, context: grpc.ServicerContext) -> Any:
        with self._store(context) as store:
            view = Catalog(store, self._configs).find(request.image.image)
            if view is None:  # not an error: the kubelet asks to learn whether to pull
                return api_pb2.ImageStatusResponse()
            info = verbose_info(view) if request.verbose else {}
            return api_pb2.ImageStatusResponse(image=message(view), info=info)

    @answering
    def PullImage(self, request: api_pb2.PullImageRequest, context: grpc.ServicerContext) -> Any:
        ref = normalize(request.image.image)
        pulled = pull(
            self.options,
            ref.canonical(),
            auth=credentials(request.auth if request.HasField("auth") else None),
            unsigned_without_key=not pull_settings(self.options).require_signatures,
            report=Report(say=log.info),
        )
        with self._store(context) as store:
            view = Catalog(store, self._configs).view(pulled.id)
        if view is None:
            raise InternalError(f"{ref.canonical()} was pulled but is not an OCI image in the store")
        log.info("pulled %s: %s", ref.canonical(), view.id)
        return api_pb2.PullImageResponse(image_ref=view.id)

    @answering
    def RemoveImage(self, request: api_pb2.RemoveImageRequest, context: grpc.ServicerContext) -> Any:
        with self._store(context) as store:
            view = Catalog(store, self._configs).find(request.image.image)
        if view is not None:  # removing what is not there succeeds, as the CRI asks
            # a pod uses it: FAILED_PRECONDITION (the kubelet removes unused images only)
            try:
                remove_image(self.options, view.store_id)
            except Error as error:
                if kind_of(error) is not ErrorKind.NOT_FOUND:  # (else removed meanwhile)
                    raise
            self._configs.pop(view.store_id, None)
        return api_pb2.RemoveImageResponse()

    @answering
    def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest, context: grpc.ServicerContext) -> Any:
        with self._store(context) as store:
            root = store.paths.root
        with self._fs_lock:
            now = time.monotonic()
            if self._fs_info is None or now - self._fs_info[0] > FS_INFO_TTL:
                self._fs_info = (now, *disk_use(root))
            _, used, inodes = self._fs_info
        usage = api_pb2.FilesystemUsage(timestamp=time.time_ns())
        usage.fs_id.mountpoint = root
        usage.used_bytes.value = used
        usage.inodes_used.value = inodes
        return api_pb2.ImageFsInfoResponse(image_filesystems=[usage])


def add_to_server(server: grpc.Server, options: GlobalOptions) -> ImageService:
    """The image service on ``server`` (crisrv's stage0/cri/server.py calls this)."""
    service = ImageService(options)
    add: Callable[[Any, grpc.Server], None] = api_pb2_grpc.add_ImageServiceServicer_to_server
    add(service, server)
    return service
