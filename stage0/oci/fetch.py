"""``docker://`` (and the other OCI transports) wherever an image is named: the store first, as
the pull policy says, then the registry. rkt's rule for trust: an image from a registry is run
only when verified, or when the user says ``--insecure-options=image``."""

from __future__ import annotations

import platform as host
from typing import TYPE_CHECKING

from stage0.errors import UsageError
from stage0.fetch.http import FetchError
from stage0.oci.credentials import registry_credentials
from stage0.oci.pull import Platform, pull
from stage0.oci.reference import Transport, parse_oci_ref
from stage0.oci.registry import Registry
from stage0.options import InsecureOption
from stage0.store.index import ImageRow
from stage0.store.store import ImageNotFound
from stage0.trust.verify import SignatureError

if TYPE_CHECKING:
    from stage0.fetch.fetcher import Fetcher

_ARCH = {"x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "i686": ("386", "")}


def host_platform() -> Platform:
    machine = host.machine()
    architecture, variant = _ARCH.get(machine, (machine, ""))
    return Platform("linux", architecture, variant)


def fetch_oci(fetcher: Fetcher, text: str) -> ImageRow:
    from stage0.fetch.fetcher import PullPolicy

    ref = parse_oci_ref(text)
    if ref.transport is not Transport.DOCKER:
        raise UsageError(f"{ref.transport}: images are not supported yet", hint="fetch it as docker://")
    store, options = fetcher.store, fetcher.options
    remote = store.index.remote(ref.canonical())
    stored = store.index.image(remote.image_id) if remote else None
    if options.pull_policy is not PullPolicy.UPDATE or (ref.digest and stored):
        if stored is not None:
            return stored
        if options.pull_policy is PullPolicy.NEVER:
            raise ImageNotFound(
                f"{ref.canonical()} is not in the store", hint="fetch it, or use --pull-policy=new"
            )
    if not options.skips(InsecureOption.IMAGE):
        raise SignatureError(
            f"{ref.canonical()} cannot be verified: no signature key is trusted for it",
            hint="--insecure-options=image runs it unverified (as rkt required for docker:// images)",
        )
    credentials = registry_credentials(ref.registry, fetcher.http.credentials)
    registry = Registry(fetcher.http, ref, credentials, plain_http=options.skips(InsecureOption.HTTP))
    try:
        return pull(store, registry, ref, host_platform(), say=fetcher.say)
    except FetchError as error:
        if stored is None:
            raise
        fetcher.say(
            f"warning: {error.message}\n  using {ref.canonical()} from the store ({stored.short_id})"
        )
        return stored
