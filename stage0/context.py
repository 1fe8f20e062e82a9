"""Building the long-lived objects a verb needs from the global options (the only place that does)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stage0.images.aci.tarstream import Limits
from stage0.images.fetch.fetcher import Fetcher
from stage0.images.fetch.policy import QUIET, FetchOptions, PullPolicy, Report
from stage0.images.store.store import Store
from stage0.options import GlobalOptions, InsecureOption

if TYPE_CHECKING:  # loaded by the verbs that fetch or check signatures, not by a run from the store
    from stage0.images.fetch.auth import Credentials
    from stage0.images.fetch.http import Http
    from stage0.images.trust.keystore import Keystore

# The decompression-bomb limit; NSPOD_MAX_IMAGE_SIZE (bytes) raises or lowers it.
DEFAULT_MAX_IMAGE = 64 << 30


def limits() -> Limits:
    raw = os.environ.get("NSPOD_MAX_IMAGE_SIZE", "")
    return Limits(max_bytes=int(raw)) if raw.isdigit() else Limits(max_bytes=DEFAULT_MAX_IMAGE)


def open_store(options: GlobalOptions) -> Store:
    return Store.open(options.dir, limits())


def keystore(options: GlobalOptions) -> Keystore:
    from stage0.images.trust.keystore import Keystore

    return Keystore(options.system_config, options.local_config)


def http(options: GlobalOptions, auth: Mapping[str, Credentials] | None = None) -> Http:
    """``auth``: credentials by registry host over auth.d's (a CRI pull's own)."""
    from stage0.images.fetch.auth import load_auth
    from stage0.images.fetch.http import Http
    from stage0.images.oci.reference import registries_conf  # only fetches load it

    return Http(
        insecure_tls=options.allows(InsecureOption.TLS),
        allow_http=options.allows(InsecureOption.HTTP),
        auth={**load_auth(list(options.config_dirs)), **(auth or {})},
        config_dirs=options.config_dirs,
        insecure_hosts=frozenset(registries_conf(options.config_dirs, "insecure")),
    )


def fetcher(
    options: GlobalOptions,
    store: Store,
    policy: PullPolicy = PullPolicy.UPDATE,
    report: Report = QUIET,
    *,
    auth: Mapping[str, Credentials] | None = None,
    unsigned_without_key: bool = False,
) -> Fetcher:
    fetch_options = FetchOptions(
        unsigned_without_key=unsigned_without_key,
        insecure=options.insecure,
        trust_keys_from_https=options.trust_keys_from_https,
        pull_policy=policy,
        progress=report.progress,
        platform=options.platform,
    )
    # the HTTP client is made on first use: runs from the store never import it
    return Fetcher(store, lambda: http(options, auth), keystore(options), fetch_options, say=report.say)
