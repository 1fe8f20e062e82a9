"""``docker://`` (and the other OCI transports) wherever an image is named: the store first, as
the pull policy says, then the registry. rkt's rule for trust: an image from a registry is run
only when verified, or when the user says ``--insecure-options=image``."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from stage0.images.fetch.auth import Credentials
from stage0.images.fetch.http import FetchError, Http
from stage0.images.fetch.policy import FetchOptions, PullPolicy
from stage0.images.oci.credentials import registry_credentials
from stage0.images.oci.manifest import Manifest, parse_document
from stage0.images.oci.pull import Platform, pull, remote_key
from stage0.images.oci.reference import OciRef, Transport, default_registry, parse_oci_ref, registry_mirrors
from stage0.images.oci.registry import NotFound, Registry
from stage0.images.store.rows import ImageRow
from stage0.images.store.store import ImageNotFound
from stage0.options import InsecureOption

if TYPE_CHECKING:
    from collections.abc import Callable

    from stage0.images.fetch.http import Http
    from stage0.images.store.store import Store
    from stage0.images.trust.cosign import CosignKey
    from stage0.images.trust.keystore import Keystore

_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "i686": ("386", "")}


def host_platform() -> Platform:
    machine = os.uname().machine  # platform.machine()'s, without its module's import
    architecture, variant = _ARCH.get(machine, (machine, ""))
    return Platform("linux", architecture, variant)


def signatures(registry: Registry, digest: str, repository: str) -> list[tuple[bytes, str]]:
    """The (payload, signature) pairs of a manifest's cosign signature image."""
    from stage0.images.trust.cosign import PAYLOAD_TYPE, SIGNATURE_ANNOTATION, CosignError, signature_tag

    try:
        body, media, _ = registry.manifest(signature_tag(digest))
    except NotFound:
        raise CosignError(
            f"{repository}@{digest} is not signed (no {signature_tag(digest)} in the repository)"
        ) from None
    document = parse_document(body, media, any_layers=True)
    if not isinstance(document, Manifest):
        raise CosignError(f"{repository}: the signature {signature_tag(digest)} is not an image manifest")
    return [
        (registry.small_blob(layer.digest), (layer.annotations or {}).get(SIGNATURE_ANNOTATION, ""))
        for layer in document.layers
        if layer.media_type == PAYLOAD_TYPE
    ]


def insecure_registry(http: Http, ref: OciRef, credentials: Credentials | None) -> Registry:
    """A registry registries.conf calls insecure: HTTPS with any certificate if it speaks TLS,
    else plain HTTP (as the containers tools treat ``insecure = true``)."""
    try:
        http.call("GET", f"https://{ref.registry}/v2/").close()
        return Registry(http, ref, credentials, plain_http=False)
    except FetchError:
        return Registry(http, ref, credentials, plain_http=True)


class Fetching(Protocol):
    """What an OCI fetch takes from the fetcher that dispatched it (stage0/images/fetch/fetcher.py)."""

    @property
    def store(self) -> Store: ...
    @property
    def http(self) -> Http: ...
    @property
    def keystore(self) -> Keystore: ...
    @property
    def options(self) -> FetchOptions: ...
    @property
    def say(self) -> Callable[[str], None]: ...


def _registry(fetcher: Fetching, ref: OciRef) -> Registry:
    """The registry ``ref`` names (a mirror's, when ``ref`` was pointed at one), with the
    credentials of this pull or else those stored for its host."""
    options = fetcher.options
    credentials = registry_credentials(ref.registry, fetcher.http.credentials)
    if ref.registry in fetcher.http.insecure_hosts and not options.skips(InsecureOption.HTTP):
        return insecure_registry(fetcher.http, ref, credentials)
    return Registry(fetcher.http, ref, credentials, plain_http=options.skips(InsecureOption.HTTP))


def _cosign_keys(keystore: Keystore, repository: str) -> list[CosignKey]:
    # the trust modules are imported where a check needs them: an unverified pull's imports are
    # its command's start-up time (bench/pull)
    from stage0.images.trust.cosign import CosignKeys

    return CosignKeys(keystore.system, keystore.local).keys_for(repository)


def fetch_oci(fetcher: Fetching, text: str) -> ImageRow:
    ref = parse_oci_ref(text, default_registry(fetcher.http.config_dirs))
    store, options = fetcher.store, fetcher.options
    platform = Platform.parse(options.platform) if options.platform else host_platform()
    if ref.transport is not Transport.DOCKER:
        if not options.skips(InsecureOption.IMAGE):  # verified by default, as an .aci file is
            from stage0.images.trust.verify import SignatureError

            raise SignatureError(
                f"{ref.text} cannot be verified: nspod checks OCI images by their cosign signatures"
                " in a registry",
                hint="push it to a registry and sign it, or --insecure-options=image to take it unverified",
            )
        from stage0.images.oci.local import open_local  # an OCI layout's (a pull's start-up time)

        local = open_local(ref)
        try:
            return pull(store, local, ref, platform, say=fetcher.say)
        finally:
            local.close()
    remote = store.index.remote(remote_key(ref, platform))
    stored = store.index.image(remote.image_id) if remote else None
    if options.pull_policy is not PullPolicy.UPDATE or (ref.digest and stored):
        if stored is not None:
            return stored
        if options.pull_policy is PullPolicy.NEVER:
            raise ImageNotFound(
                f"{ref.canonical()} is not in the store", hint="fetch it, or use --pull-policy=new"
            )
    repository = f"{ref.registry}/{ref.repository}"
    keystore = fetcher.keystore
    keys = [] if options.skips(InsecureOption.IMAGE) else _cosign_keys(keystore, repository)
    if not keys and not options.skips(InsecureOption.IMAGE) and not options.unsigned_without_key:
        from stage0.images.trust.verify import SignatureError

        raise SignatureError(
            f"{ref.canonical()} cannot be verified: no cosign key is trusted for {repository}",
            hint=f"nspod trust --prefix docker://{repository} --cosign-key KEY.pub, or"
            " --insecure-options=image to run it unverified (rkt's rule for docker:// images)",
        )
    mirror = registry_mirrors(fetcher.http.config_dirs).get(ref.registry)
    registry = _registry(fetcher, replace(ref, registry=mirror) if mirror else ref)

    def check(digest: str) -> str | None:
        if not keys:
            return None
        from stage0.images.trust.cosign import verify

        key = verify(signatures(registry, digest, repository), digest, repository, keys)
        fetcher.say(f"signature verified: cosign key {key.fingerprint[:16]}… trusted for {key.prefix}")
        return f"cosign:{key.fingerprint}"

    try:
        try:
            return pull(
                store, registry, ref, platform, say=fetcher.say, verify=check, progress=options.progress
            )
        except FetchError as error:
            if not mirror:
                raise
            # as the containers tools do: a mirror that fails, then the registry itself
            fetcher.say(f"warning: mirror {mirror}: {error.message}; trying {ref.registry}")
            registry = _registry(fetcher, ref)
            return pull(
                store, registry, ref, platform, say=fetcher.say, verify=check, progress=options.progress
            )
    except FetchError as error:
        if stored is None:
            raise
        fetcher.say(
            f"warning: {error.message}\n  using {ref.canonical()} from the store ({stored.short_id})"
        )
        return stored
