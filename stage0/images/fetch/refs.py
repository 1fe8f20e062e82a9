"""What an image argument means (rkt's rules, ``Documentation/image-fetching-behavior.md``)::

sha512-0123abcd…                  an image in the store, by ID prefix
./busybox.aci  /x/y.aci  x.aci    a file (absolute, ./ or ../, or an existing file, or *.aci)
file:///x/y.aci                   a file
https://host/y.aci                an archive by URL (http:// only with --insecure-options=http)
example.com/app:1.0,os=linux      an appc name: discovered, or found in the store
docker://busybox:1.36             an OCI image (also oci:, oci-archive:, docker-archive:)
127.0.0.1:5000/app:1  host/a@sha256:…  the same as docker://… (what ``image list`` shows): a
                                  host:port or a digest is never part of an appc name
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from stage0.errors import UsageError
from stage0.images.oci.reference import TRANSPORTS
from stage0.schema.types import ACIdentifier, Invalid

_ID_PREFIX = re.compile(r"sha512-[0-9a-f]{1,128}")
# REGISTRY:PORT/… or …@sha256:…: an OCI registry reference written without its docker://
_REGISTRY_REF = re.compile(r"[^/:@,]+:[0-9]+/[^,]*|[^:@,]+@sha(256|512):[0-9a-f]+")
_ARCH = {
    "x86_64": "amd64",
    "aarch64": "aarch64",
    "i686": "i386",
    "i386": "i386",
    "armv7l": "armv7l",
    "armv6l": "armv6l",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
}


class RefKind(enum.StrEnum):
    ID = "id"
    FILE = "file"
    URL = "url"
    NAME = "name"
    OCI = "oci"  # docker://, oci:, oci-archive:, docker-archive: (stage0/images/oci)


@dataclass(frozen=True, slots=True)
class ImageRef:
    kind: RefKind
    text: str  # the argument as given
    target: str  # ID prefix, file path, URL, image name or OCI reference (with its transport)
    labels: dict[str, str] = field(default_factory=dict)  # for names: version, os, arch, …


def host_labels() -> dict[str, str]:
    """The os/arch labels of this machine, in appc's spelling."""
    machine = os.uname().machine  # platform.machine()'s, without its module's import
    return {"os": "linux", "arch": _ARCH.get(machine, machine)}


def parse_app_name(text: str) -> tuple[str, dict[str, str]]:
    """``name[:version][,label=value…]`` → (name, labels)."""
    head, *pairs = text.split(",")
    name, colon, version = head.partition(":")
    try:
        ACIdentifier(name)
    except Invalid as error:
        raise UsageError(
            f"bad image name {text!r}: {error}",
            hint="use name[:version][,label=value…], e.g. example.com/app:1.0,os=linux",
        ) from None
    labels: dict[str, str] = {}
    if colon:
        if not version:
            raise UsageError(f"bad image name {text!r}: empty version after ':'")
        labels["version"] = version
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key or not value:
            raise UsageError(f"bad label {pair!r} in {text!r}", hint="labels are written name=value")
        if key == "version" and "version" in labels:
            raise UsageError(f"version given twice in {text!r}")
        labels[key] = value
    return name, labels


def parse_ref(text: str, *, is_file: Callable[[str], bool] = os.path.isfile) -> ImageRef:
    if not text:
        raise UsageError("empty image reference")
    if _ID_PREFIX.fullmatch(text):
        return ImageRef(RefKind.ID, text, text)
    if text.startswith(TRANSPORTS):
        return ImageRef(RefKind.OCI, text, text)
    if _REGISTRY_REF.fullmatch(text):
        return ImageRef(RefKind.OCI, text, f"docker://{text}")
    scheme = urlsplit(text).scheme
    if scheme == "file":
        return ImageRef(RefKind.FILE, text, unquote(urlsplit(text).path))
    if scheme in ("http", "https"):
        return ImageRef(RefKind.URL, text, text)
    if scheme and "://" in text:
        raise UsageError(
            f"unsupported URL scheme {scheme!r} in {text!r}", hint="use file://, https:// or http://"
        )
    looks_like_path = text.startswith(("/", "./", "../")) or text.endswith(".aci") or is_file(text)
    if looks_like_path and ":" not in text.split("/")[-1]:
        return ImageRef(RefKind.FILE, text, text)
    name, labels = parse_app_name(text)
    return ImageRef(RefKind.NAME, text, name, labels)
