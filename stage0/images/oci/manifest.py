"""OCI and Docker schema 2 documents, read from untrusted bytes into frozen data: image manifests,
indexes (manifest lists) and image configs. No I/O.

Registries answer with whatever the Accept header allows (a registry given no Accept converts
Docker schema 2 down to the signed schema 1), so the client always asks for the four types below
and trusts the ``mediaType`` of the body over the Content-Type of the answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stage0.errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFESTS, *INDEXES))
CONFIGS = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json")
LAYERS = {  # media type → compression
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}
FOREIGN = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
           "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")  # fmt: skip
DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
MAX_DOCUMENT = 4 << 20  # manifests, indexes and configs are small; refuse anything larger


class ManifestError(ImageError):
    hint = "the registry or archive served a malformed image; nothing was stored"


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Mapping[str, str] | None = None  # in indexes: os, architecture, variant
    annotations: Mapping[str, str] | None = None

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class ImageConfig:
    os: str
    architecture: str
    diff_ids: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    user: str = ""
    working_dir: str = ""
    exposed_ports: tuple[tuple[int, str], ...] = ()  # (port, protocol)
    volumes: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    stop_signal: str = ""
    healthcheck: str = ""  # the config's Healthcheck, as JSON (stage0/pods/health.py oci_annotations)


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(data: bytes, digest: str, what: str) -> bytes:
    """``data``, if it is what ``digest`` names; a ManifestError otherwise."""
    if digest_of(data, digest.split(":")[0]) != digest:
        raise ManifestError(
            f"{what}: {digest} does not match its content",
            hint="the source served altered content; nothing was stored",
        )
    return data


def load_json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_DOCUMENT:
        raise ManifestError(f"{what} is larger than {MAX_DOCUMENT} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{what} is not JSON: {error}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object")
    return doc


def _descriptor(raw: object, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise ManifestError(f"{what}: a descriptor must be an object")
    media, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media, str) or not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise ManifestError(f"{what}: bad mediaType or digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{what}: bad size {size!r}")
    platform = raw.get("platform")
    if platform is not None:
        if not isinstance(platform, dict):
            raise ManifestError(f"{what}: platform must be an object")
        platform = {k: v for k, v in platform.items() if isinstance(v, str)}
    annotations = raw.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            raise ManifestError(f"{what}: annotations must be an object")
        annotations = {k: v for k, v in annotations.items() if isinstance(v, str)}
    return Descriptor(media, digest, size, platform, annotations)


def parse_document(data: bytes, served_type: str = "", *, any_layers: bool = False) -> Manifest | Index:
    """A manifest or an index; the body's mediaType decides, the served type only when absent.
    ``any_layers``: layers of any media type (a signature's), else only layer tars."""
    doc = load_json(data, "the image manifest")
    media = doc.get("mediaType") or served_type.split(";")[0].strip()
    if doc.get("schemaVersion") == 1 or media.endswith("+prettyjws"):
        raise ManifestError(
            "the registry served a Docker schema 1 manifest",
            hint="push the image again with schema 2 or OCI",
        )
    if doc.get("schemaVersion") != 2:
        raise ManifestError(f"unsupported schemaVersion {doc.get('schemaVersion')!r}")
    if media in INDEXES or (not media and "manifests" in doc):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("the index has no manifests list")
        return Index(media or OCI_INDEX, tuple(_descriptor(e, "index entry") for e in entries))
    if media in MANIFESTS or (not media and "config" in doc):
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("the manifest has no layers list")
        config = _descriptor(doc.get("config"), "config")
        parsed = tuple(_descriptor(layer, f"layer {i}") for i, layer in enumerate(layers))
        for layer in () if any_layers else parsed:
            if layer.media_type in FOREIGN:
                raise ManifestError(f"layer {layer.digest} is a foreign (non-distributable) layer")
            if layer.media_type not in LAYERS:
                raise ManifestError(f"layer {layer.digest} has unknown media type {layer.media_type}")
        return Manifest(media or OCI_MANIFEST, config, parsed)
    raise ManifestError(f"unsupported manifest media type {media!r}")


def choose(index: Index, os: str, architecture: str, variant: str = "") -> Descriptor:
    """The index entry for a platform (an exact variant first, then any variant)."""
    candidates = [
        m for m in index.manifests
        if m.platform and m.platform.get("os") == os and m.platform.get("architecture") == architecture
        and m.media_type in MANIFESTS
    ]  # fmt: skip
    exact = [m for m in candidates if not variant or (m.platform or {}).get("variant") == variant]
    if exact or candidates:
        return (exact or candidates)[0]
    offered = ", ".join(
        "/".join(filter(None, (p.get("os"), p.get("architecture"), p.get("variant"))))
        for p in (m.platform for m in index.manifests) if p
    ) or "none"  # fmt: skip
    raise ManifestError(
        f"the image has no {'/'.join(filter(None, (os, architecture, variant)))} variant"
        f" (offered: {offered})",
        hint="choose one with --platform=OS/ARCH[/VARIANT]",
    )


def _strings(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"the image config's {what} must be a list of strings")
    return tuple(value)


def _keys(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ManifestError(f"the image config's {what} must be an object")
    return tuple(sorted(value))


def parse_config(data: bytes) -> ImageConfig:
    doc = load_json(data, "the image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ManifestError("the image config has no rootfs of type layers")
    diff_ids = _strings(rootfs.get("diff_ids"), "rootfs.diff_ids")
    if not all(DIGEST.fullmatch(d) for d in diff_ids):
        raise ManifestError("the image config has a malformed diff ID")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ManifestError("the image config's config must be an object")
    env = []
    for item in _strings(config.get("Env"), "Env"):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ManifestError(f"the image config's Env has {item!r}, not KEY=VALUE")
        env.append((key, value))
    ports = []
    for spec in _keys(config.get("ExposedPorts"), "ExposedPorts"):
        number, _, protocol = spec.partition("/")
        if not number.isdigit() or not 0 < int(number) < 65536 or (protocol or "tcp") not in ("tcp", "udp"):
            raise ManifestError(f"the image config exposes a bad port {spec!r}")
        ports.append((int(number), protocol or "tcp"))
    labels = config.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ManifestError("the image config's Labels must map strings to strings")
    text = {k: config.get(k) or "" for k in ("User", "WorkingDir", "StopSignal")}
    if not all(isinstance(v, str) for v in text.values()):
        raise ManifestError("the image config's User, WorkingDir and StopSignal must be strings")
    return ImageConfig(
        os=str(doc.get("os", "")),
        architecture=str(doc.get("architecture", "")),
        diff_ids=diff_ids,
        entrypoint=_strings(config.get("Entrypoint"), "Entrypoint"),
        cmd=_strings(config.get("Cmd"), "Cmd"),
        env=tuple(env),
        user=text["User"],
        working_dir=text["WorkingDir"],
        exposed_ports=tuple(sorted(ports)),
        volumes=_keys(config.get("Volumes"), "Volumes"),
        labels=tuple(sorted(labels.items())),
        stop_signal=text["StopSignal"],
        healthcheck=json.dumps(check) if isinstance(check := config.get("Healthcheck"), dict) else "",
    )
