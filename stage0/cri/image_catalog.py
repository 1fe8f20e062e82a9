"""The store's OCI images as the CRI sees them: an ID (``sha256:`` of the image config, as
containerd and CRI-O give it), the tags and digests it was pulled by (the store's remote cache),
and the user its config names. Lookups take any of an ID, a tag or a digest reference, so that
``ImageStatus(id) == ImageStatus(tag) == ImageStatus(digest)``, as critest checks.

Pure over one open store: nothing here writes; the servicer (stage0/cri/images.py) pulls and removes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any

from stage0.errors import UsageError
from stage0.oci.reference import DEFAULT_REGISTRY, OciRef, parse_docker
from stage0.store.rows import ImageRow, RemoteRow
from stage0.store.store import Store

_HEX_ID = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


@dataclass(frozen=True, slots=True)
class CriImage:
    id: str  # sha256:<digest of the image config>
    store_id: str  # nspod's ID of the same image (sha512-…), what pods and `nspod image` name
    repo_tags: tuple[str, ...]  # REGISTRY/REPOSITORY:TAG
    repo_digests: tuple[str, ...]  # REGISTRY/REPOSITORY@sha256:… (the manifest or index pulled)
    size: int
    uid: int | None  # from the config's User: a number…
    username: str  # …or a name (the CRI sets one of the two)
    config: dict[str, Any]  # the OCI image config, for verbose status
    source: str
    signer: str | None


def normalize(text: str) -> OciRef:
    """A CRI image name (docker's grammar: short names on docker.io, ``latest`` by default)."""
    if not text or "://" in text:
        raise UsageError(
            f"bad image name {text!r}", hint="name an image as REGISTRY/REPOSITORY[:TAG|@DIGEST]"
        )
    return parse_docker(f"docker://{text}", DEFAULT_REGISTRY)


def user_of(config: dict[str, Any]) -> tuple[int | None, str]:
    """The config's User as the CRI's uid or username (the group part is not reported)."""
    user = str((config.get("config") or {}).get("User") or "").partition(":")[0]
    if not user:
        return None, ""
    return (int(user), "") if user.isdigit() else (None, user)


def _key(remote: RemoteRow) -> tuple[OciRef, str] | None:
    """A remote row's reference and platform (rows of other sources than a registry: None)."""
    url, _, platform = remote.url.partition("#")
    if not url.startswith("docker://"):
        return None
    try:
        return parse_docker(url), platform
    except UsageError:
        return None


class Catalog:
    """The CRI's view of one open store, read once (a request's worth)."""

    def __init__(self, store: Store, configs: dict[str, tuple[str, dict[str, Any]]] | None = None) -> None:
        # configs: store ID → (CRI ID, config); images are immutable, so a server keeps it across requests
        self.store = store
        self._configs = {} if configs is None else configs
        rows = [r for r in store.index.images() if r.is_oci]
        self._rows = {r.id: r for r in rows}
        self._tags: dict[str, list[str]] = {r.id: [] for r in rows}
        self._digests: dict[str, list[str]] = {r.id: [] for r in rows}
        self._by_tag: dict[str, str] = {}
        self._by_digest: dict[str, str] = {}
        for remote in store.index.remotes():
            key = _key(remote)
            if key is None or remote.image_id not in self._rows:
                continue
            ref, _ = key
            if ref.tag and not ref.digest:
                tag = f"{ref.registry}/{ref.repository}:{ref.tag}"
                self._tags[remote.image_id].append(tag)
                self._by_tag[tag] = remote.image_id
            digest = ref.digest or remote.etag
            if digest:
                name = f"{ref.registry}/{ref.repository}@{digest}"
                self._digests[remote.image_id].append(name)
                self._by_digest[name] = remote.image_id

    def _config(self, row: ImageRow) -> tuple[str, dict[str, Any]]:
        known = self._configs.get(row.id)
        if known is None:
            path = os.path.join(self.store.paths.layer(row.id), "config.json")
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except FileNotFoundError:  # removed meanwhile: an image without config is no CRI image
                return "", {}
            known = "sha256:" + hashlib.sha256(data).hexdigest(), json.loads(data)
            self._configs[row.id] = known
        return known

    def view(self, store_id: str) -> CriImage | None:
        row = self._rows.get(store_id)
        if row is None:
            return None
        cri_id, config = self._config(row)
        if not cri_id:
            return None
        uid, username = user_of(config)
        return CriImage(
            id=cri_id, store_id=row.id, repo_tags=tuple(sorted(set(self._tags[row.id]))),
            repo_digests=tuple(sorted(set(self._digests[row.id]))), size=row.size, uid=uid,
            username=username, config=config, source=row.source, signer=row.signer,
        )  # fmt: skip

    def images(self) -> list[CriImage]:
        views = (self.view(store_id) for store_id in self._rows)
        return [v for v in views if v is not None]

    def find(self, text: str) -> CriImage | None:
        """The image ``text`` names: its CRI ID (or the hex alone), nspod's ID, a tag or a digest
        reference; None when the store has none (the CRI answers an empty status, not an error)."""
        if text.startswith("sha512-"):
            return self.view(text) if text in self._rows else None
        match = _HEX_ID.fullmatch(text)
        if match:
            wanted = "sha256:" + match.group(1)
            for view in self.images():
                if view.id == wanted:
                    return view
            if text.startswith("sha256:"):
                return None
        ref = normalize(text)
        name = f"{ref.registry}/{ref.repository}"
        store_id = (
            self._by_digest.get(f"{name}@{ref.digest}")
            if ref.digest
            else self._by_tag.get(f"{name}:{ref.tag}")
        )
        return self.view(store_id) if store_id else None
