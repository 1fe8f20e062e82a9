"""Where an OCI image comes from, as the user wrote it (the grammar of docker's and the
containers tools' references)::

    docker://[REGISTRY/]REPO[:TAG|@DIGEST]   a registry; short names → docker.io/library/…
    oci:PATH[:REF]                           an OCI image layout directory (REF: its ref.name)
    oci-archive:FILE[:REF]                   the same, as a tar file
    docker-archive:FILE[:REPO:TAG]           ``docker save`` output
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from stage0.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
COMPONENT = re.compile(_COMPONENT)
_REPO = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
DOMAIN = re.compile(r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")


class Transport(enum.StrEnum):
    DOCKER = "docker"
    OCI = "oci"
    OCI_ARCHIVE = "oci-archive"
    DOCKER_ARCHIVE = "docker-archive"


TRANSPORTS = tuple(f"{t}:" for t in Transport)


@dataclass(frozen=True, slots=True)
class OciRef:
    transport: Transport
    text: str  # as given
    registry: str = ""  # docker: the registry's host[:port]
    repository: str = ""  # docker: the repository; docker-archive: repo of the REF if given
    tag: str = ""  # docker: the tag (latest when neither tag nor digest is given)
    digest: str = ""  # docker: pinned manifest digest (sha256:…)
    path: str = ""  # oci, oci-archive, docker-archive: the file or directory
    ref: str = ""  # oci layouts: the ref.name annotation; docker-archive: REPO:TAG

    @property
    def name(self) -> str:
        """The image's name as stored (appc-style: no scheme, no tag)."""
        if self.transport is Transport.DOCKER:
            return f"{self.registry}/{self.repository}"
        return f"{self.transport}:{self.path}"

    @property
    def reference(self) -> str:
        """The tag or digest a registry is asked for; a local source's REF."""
        return self.digest or self.tag if self.transport is Transport.DOCKER else self.ref

    def canonical(self) -> str:
        if self.transport is Transport.DOCKER:
            return f"docker://{self.name}" + (f"@{self.digest}" if self.digest else f":{self.tag}")
        return f"{self.transport}:{self.path}" + (f":{self.ref}" if self.ref else "")


def _bad(text: str, why: str, hint: str) -> UsageError:
    return UsageError(f"bad image reference {text!r}: {why}", hint=hint)


def parse_docker(text: str, default_registry: str = DEFAULT_REGISTRY) -> OciRef:
    hint = "write docker://[REGISTRY/]REPO[:TAG|@sha256:DIGEST], e.g. docker://busybox:1.36"
    rest = text.removeprefix("docker://")
    if not rest or rest == text:
        raise _bad(text, "nothing after docker://", hint)
    rest, at, digest = rest.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise _bad(text, f"{digest!r} is not a sha256: or sha512: digest", hint)
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not DOMAIN.fullmatch(first):
            raise _bad(text, f"{first!r} is not a registry host[:port]", hint)
        registry, path = first, remainder
    else:
        registry, path = default_registry, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if colon and not _TAG.fullmatch(tag):
        raise _bad(text, f"bad tag {tag!r}", hint)
    if registry in DOCKER_HUB_ALIASES:
        registry = "docker.io"
        if "/" not in name:
            name = f"library/{name}"
    if not _REPO.fullmatch(name):
        raise _bad(text, f"bad repository {name!r} (lower case letters, digits, . _ - and /)", hint)
    return OciRef(
        Transport.DOCKER, text, registry=registry, repository=name, tag=tag or ("" if at else "latest"),
        digest=digest,
    )  # fmt: skip


def registries_conf(config_dirs: tuple[str, ...], key: str) -> list[str]:
    """The values of ``key`` in ``registries.conf`` (``KEY = HOST[:PORT]``, one per line, ``#``
    comments) of the local, then the system config directory: registry settings."""
    found = []
    for directory, value in _values(config_dirs, key):
        host = value.strip('"')
        if not DOMAIN.fullmatch(host):
            raise UsageError(f"{directory}/registries.conf: {key} {host!r} is not a HOST[:PORT]")
        found.append(host)
    return found


def registry_mirrors(config_dirs: tuple[str, ...]) -> dict[str, str]:
    """``mirror = REGISTRY=MIRROR`` lines: pulls of REGISTRY/REPO go to MIRROR/REPO first, the
    image keeping its name (the containers tools' ``[[registry.mirror]]``, one mirror a registry)."""
    mirrors: dict[str, str] = {}
    for directory, value in _values(config_dirs, "mirror"):
        registry, equals, mirror = value.strip('"').partition("=")
        registry, mirror = registry.strip(), mirror.strip()
        if not equals or not DOMAIN.fullmatch(registry) or not DOMAIN.fullmatch(mirror):
            raise UsageError(
                f"{directory}/registries.conf: mirror {value!r} is not REGISTRY=MIRROR",
                hint="e.g. mirror = registry.k8s.io=127.0.0.1:5000",
            )
        mirrors.setdefault(registry, mirror)  # the local config's first
    return mirrors


def _values(config_dirs: tuple[str, ...], key: str) -> list[tuple[str, str]]:
    found = []
    for directory in reversed(config_dirs):
        try:
            with open(f"{directory}/registries.conf") as file:
                lines = file.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            name, equals, value = line.split("#", 1)[0].partition("=")
            if equals and name.strip() == key:
                found.append((directory, value.strip()))
    return found


def default_registry(config_dirs: tuple[str, ...]) -> str:
    """The registry of short names: ``default-registry`` of registries.conf, else docker.io."""
    return next(iter(registries_conf(config_dirs, "default-registry")), DEFAULT_REGISTRY)


def parse_oci_ref(text: str, default_registry: str = DEFAULT_REGISTRY) -> OciRef:
    """Any of the four transports; a UsageError with the accepted forms otherwise."""
    if text.startswith("docker://"):
        return parse_docker(text, default_registry)
    transport_text, _, rest = text.partition(":")
    try:
        transport = Transport(transport_text)
    except ValueError:
        raise _bad(
            text, "unknown transport", "use docker://, oci:, oci-archive: or docker-archive:"
        ) from None
    if transport is Transport.DOCKER:
        raise _bad(text, "docker needs //", "write docker://REPO[:TAG]")
    if not rest:
        raise _bad(text, "no path", f"write {transport}:PATH[:REF]")
    # a path may hold colons only before the last one that starts a REF (REF holds no '/')
    path, colon, ref = rest.rpartition(":")
    if not colon or "/" in ref or not path:
        path, ref = rest, ""
    elif transport is Transport.DOCKER_ARCHIVE:  # FILE:REPO:TAG
        head, colon2, repo = path.rpartition(":")
        if colon2 and head:
            path, ref = head, f"{repo}:{ref}"
    return OciRef(transport, text, path=path, ref=ref)
