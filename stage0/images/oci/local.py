"""OCI images on disk, read through the same interface as a registry (stage0/images/oci/registry.py) so
pull.py stores them the same way: an OCI image layout (``oci:DIR[:REF]``), the same as a tar
(``oci-archive:FILE[:REF]``), and ``docker save`` output (``docker-archive:FILE[:REPO:TAG]``),
whose manifest.json is turned into a Docker schema 2 manifest. Every blob is checked against its
digest, as a registry's are; blob names come from digests alone (no path from the archive is
followed)."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from typing import IO

from stage0.errors import InputError, UsageError
from stage0.images.aci.compression import Compression, sniff
from stage0.images.oci.manifest import (
    DIGEST,
    DOCKER_MANIFEST,
    MAX_DOCUMENT,
    ManifestError,
    check_digest,
    load_json,
)
from stage0.images.oci.reference import OciRef, Transport, parse_docker

REF_NAME = "org.opencontainers.image.ref.name"
_LAYER_TYPES = {
    Compression.NONE: "application/vnd.docker.image.rootfs.diff.tar",
    Compression.GZIP: "application/vnd.docker.image.rootfs.diff.tar.gzip",
}


class LocalBlob:
    """A blob's bytes from ``offset`` (always all of them: status 200), like a registry's reply."""

    status = 200

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        while data := self._file.read(size):
            yield data

    def close(self) -> None:
        self._file.close()


class Layout:
    """An OCI image layout: ``index.json`` and ``blobs/<algorithm>/<hex>``, in a directory or a tar."""

    remote = False

    def __init__(self, ref: OciRef) -> None:
        self.ref = ref
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        try:
            if ref.transport is Transport.OCI:
                if not os.path.isfile(os.path.join(ref.path, "index.json")):
                    raise InputError(f"{ref.path} is not an OCI image layout (no index.json)")
            else:
                self._tar = tarfile.open(ref.path, "r:")  # noqa: SIM115
                self._members = {os.path.normpath(m.name): m for m in self._tar.getmembers() if m.isfile()}
        except (OSError, tarfile.TarError) as error:
            raise InputError(
                f"cannot read {ref.path} as {ref.transport}: {error}",
                hint="give a directory with index.json"
                if ref.transport is Transport.OCI
                else "give a tar file",
            ) from None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def _open(self, name: str) -> IO[bytes]:
        if self._tar is None:
            try:
                return open(os.path.join(self.ref.path, name), "rb")
            except OSError:
                raise ManifestError(f"{self.ref.text}: no {name} in the layout") from None
        member = self._members.get(name)
        extracted = self._tar.extractfile(member) if member else None
        if extracted is None:
            raise ManifestError(f"{self.ref.text}: no {name} in the archive")
        return extracted

    def _read(self, name: str) -> bytes:
        with self._open(name) as file:
            data = file.read(MAX_DOCUMENT + 1)
        if len(data) > MAX_DOCUMENT:
            raise ManifestError(f"{self.ref.text}: {name} is larger than {MAX_DOCUMENT} bytes")
        return data

    def _blob_name(self, digest: str) -> str:
        if not DIGEST.fullmatch(digest):
            raise ManifestError(f"{self.ref.text}: bad digest {digest!r}")
        return "blobs/" + digest.replace(":", "/")

    def _entry(self, reference: str) -> dict[str, object]:
        index = load_json(self._read("index.json"), f"{self.ref.text}: index.json")
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        named = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == reference]
        chosen = named if reference else entries
        if len(chosen) != 1:
            names = sorted(str((e.get("annotations") or {}).get(REF_NAME, "?")) for e in entries)
            raise InputError(
                f"{self.ref.text}: {'several images' if chosen else 'no image'} named"
                f" {reference or '(none given)'}",
                hint=f"name one: {self.ref.transport}:{self.ref.path}:REF, REF among {', '.join(names)}",
            )
        return chosen[0]

    def manifest_digest(self, reference: str) -> str | None:
        if DIGEST.fullmatch(reference):
            return reference
        return str(self._entry(reference).get("digest"))

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        if DIGEST.fullmatch(reference):
            return self.small_blob(reference), "", reference
        entry = self._entry(reference)
        digest = str(entry.get("digest"))
        return self.small_blob(digest), str(entry.get("mediaType", "")), digest

    def small_blob(self, digest: str) -> bytes:
        return check_digest(self._read(self._blob_name(digest)), digest, self.ref.text)

    def blob(self, digest: str, offset: int = 0) -> LocalBlob:
        return LocalBlob(self._open(self._blob_name(digest)))


def _tagged(asked: str, tags: list[str]) -> bool:
    """Whether ``asked`` (REPO:TAG) is among an archive's tags, short names as docker reads them."""

    def canonical(tag: str) -> str:
        try:
            return parse_docker(f"docker://{tag}").canonical()
        except UsageError:
            return tag

    return canonical(asked) in {canonical(t) for t in tags if isinstance(t, str)}


class DockerArchive(Layout):
    """``docker save`` output: manifest.json names the config and the layer tars by path; the
    manifest nspod reads is made from it, each blob named by the digest of its bytes."""

    def __init__(self, ref: OciRef) -> None:
        super().__init__(ref)
        entries = json.loads(self._read("manifest.json")) if "manifest.json" in self._members else None
        if not isinstance(entries, list) or not entries:
            raise ManifestError(f"{ref.text}: no manifest.json listing images (not docker save output?)")
        wanted = [e for e in entries if _tagged(ref.ref, e.get("RepoTags") or [])] if ref.ref else entries
        if len(wanted) != 1:
            raise InputError(
                f"{ref.text}: {'several images' if wanted else 'no image'} tagged"
                f" {ref.ref or '(none given)'}",
                hint=f"name one: docker-archive:{ref.path}:REPO:TAG",
            )
        self._paths: dict[str, str] = {}
        config = self._add(str(wanted[0].get("Config", "")))
        layers = []
        for path in wanted[0].get("Layers") or []:
            digest = self._add(str(path))
            with self._open(self._paths[digest]) as file:
                kind = sniff(file.read(512)) or Compression.NONE
            if kind not in _LAYER_TYPES:
                raise ManifestError(f"{ref.text}: layer {path} is {kind}, not a tar or gzip")
            layers.append(
                {
                    "mediaType": _LAYER_TYPES[kind],
                    "digest": digest,
                    "size": self._members[self._paths[digest]].size,
                }
            )
        self._document = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "layers": layers,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config,
                       "size": self._members[self._paths[config]].size},
        }).encode()  # fmt: skip
        self._digest = "sha256:" + hashlib.sha256(self._document).hexdigest()

    def _add(self, path: str) -> str:
        name = os.path.normpath(path)
        if name not in self._members:
            raise ManifestError(f"{self.ref.text}: manifest.json names {path!r}, which the archive lacks")
        digest = hashlib.sha256()
        with self._open(name) as file:
            while data := file.read(1 << 20):
                digest.update(data)
        self._paths["sha256:" + digest.hexdigest()] = name
        return "sha256:" + digest.hexdigest()

    def _blob_name(self, digest: str) -> str:
        if digest not in self._paths:
            raise ManifestError(f"{self.ref.text}: no blob {digest}")
        return self._paths[digest]

    def manifest_digest(self, reference: str) -> str | None:
        return self._digest

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        return self._document, DOCKER_MANIFEST, self._digest


def open_local(ref: OciRef) -> Layout:
    return DockerArchive(ref) if ref.transport is Transport.DOCKER_ARCHIVE else Layout(ref)
