"""Fetching an image reference into the store, signatures enforced unless the user says otherwise.

Order for remote images (rkt's): discover, get the signature, download the ACI (resuming a
partial download), check the signature against the keys trusted for the image's name, import,
then check the manifest's name and labels against what was asked for.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from stage0.errors import Error, ErrorKind, InputError
from stage0.images.fetch.policy import FetchOptions, PullPolicy, labels_match
from stage0.images.fetch.refs import ImageRef, RefKind, host_labels, parse_ref
from stage0.images.store.locks import key_locked
from stage0.images.store.rows import ImageRow, RemoteRow
from stage0.images.store.store import ImageNotFound, Store
from stage0.options import InsecureOption

# HTTP, discovery and signature checks are imported where a fetch needs them: a run of an image
# already in the store (by ID or name) loads none of them (~20 ms of a cold start)
if TYPE_CHECKING:  # OCI fetches do without the appc schema
    from stage0.images.fetch.discovery import Endpoints
    from stage0.images.fetch.http import Http
    from stage0.images.trust.keystore import Keystore
    from stage0.images.trust.verify import Verified
    from stage0.schema.image import Dependency


class ImageMismatch(Error):
    kind = ErrorKind.PERMISSION_DENIED
    hint = "the server returned a different image than the name asked for; do not trust it"


class Fetcher:
    def __init__(
        self,
        store: Store,
        http: Http | Callable[[], Http],
        keystore: Keystore,
        options: FetchOptions,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.store, self.keystore, self.options = store, keystore, options
        self._http = http
        self.say = say or (lambda text: None)  # the caller's to show (the CLI: on stderr)

    @property
    def http(self) -> Http:
        from stage0.images.fetch.http import Http

        if not isinstance(self._http, Http):
            self._http = self._http()
        return self._http

    # -- entry points ------------------------------------------------------------------------------

    def fetch(self, text: str, *, signature: str | None = None) -> ImageRow:
        ref = parse_ref(text)
        match ref.kind:
            case RefKind.ID:
                return self.store.by_prefix(ref.target)
            case RefKind.FILE:
                return self.fetch_file(ref.target, signature)
            case RefKind.URL:
                return self.fetch_url(ref.target, signature_path=signature)
            case RefKind.NAME:
                return self.fetch_name(ref, signature)
            case RefKind.OCI:
                from stage0.images.oci.fetch import fetch_oci  # only fetches of OCI images load it

                return fetch_oci(self, ref.target)

    def resolve_dependency(self, dependency: Dependency) -> ImageRow:
        """A dependency from the store, fetched by name (discovery) when missing; pinned IDs checked."""
        if dependency.image_id is not None and (row := self.store.index.image(dependency.image_id)):
            return row
        labels = {str(x.name): x.value for x in dependency.labels}
        name = str(dependency.image_name)
        row = self.store.find(name, labels) if dependency.image_id is None else None
        if row is None:
            text = name + "".join(f",{k}={v}" for k, v in labels.items())
            row = self.fetch_name(parse_ref(text), None, policy=PullPolicy.NEW)
        if dependency.image_id is not None and row.id != dependency.image_id:
            raise ImageMismatch(f"dependency {name} has ID {row.id}, but {dependency.image_id} is required")
        return row

    # -- files ---------------------------------------------------------------------------------------

    def fetch_file(self, path: str, signature_path: str | None) -> ImageRow:
        """Import a file. Under the ``new`` policy (run, prepare, pod@) a file imported before and
        unchanged since (same size and mtime) is taken from the store instead of read again."""
        try:
            st = os.stat(path)
        except OSError:
            raise InputError(f"{path}: no such file", hint="give the path of an .aci file") from None
        url, stamp = "file://" + os.path.abspath(path), f"{st.st_size}-{st.st_mtime_ns}"
        remote = self.store.index.remote(url)
        if self.options.pull_policy is not PullPolicy.UPDATE and remote is not None and remote.etag == stamp:
            row = self.store.index.image(remote.image_id)
            if row is not None and (row.signer or self.options.skips(InsecureOption.IMAGE)):
                return row
        sig = self._read_signature(signature_path or path + ".asc", required=signature_path is not None)
        verified = self._check(path, sig, source=path)
        row = self.store.import_file(path, signature=sig, signer=verified.fingerprint if verified else None)
        self.store.index.set_remote(RemoteRow(url, row.id, stamp, 0, time.time()))
        return row

    # -- URLs ----------------------------------------------------------------------------------------

    def fetch_url(
        self,
        url: str,
        *,
        signature_path: str | None = None,
        asc_url: str | None = None,
        expect: tuple[str, Mapping[str, str]] | None = None,
        latest: bool = False,
        policy: PullPolicy | None = None,
    ) -> ImageRow:
        from stage0.images.fetch.http import FetchError

        policy = policy or self.options.pull_policy
        cached = self._cached(url, policy)
        if cached is not None:
            return cached
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        part = os.path.join(self.store.paths.downloads, key + ".part")
        with key_locked(os.path.join(self.store.paths.downloads, key + ".lock")):
            cached = self._cached(url, policy)  # a concurrent nspod may have fetched it meanwhile
            if cached is not None:
                return cached
            remote = self.store.index.remote(url)
            known = remote is not None and self.store.index.image(remote.image_id) is not None
            sig = None
            try:
                if not self.options.skips(InsecureOption.IMAGE):
                    sig = self._remote_signature(signature_path, asc_url or url + ".asc")
                download = self.http.download(
                    url, part, etag=remote.etag if known and remote else None, progress=self.options.progress
                )
            except FetchError as error:  # pull policy update, the stored copy stale: it still serves
                stale = self.store.by_id(remote.image_id) if known and remote else None
                return self._offline(stale, url, error)
            if download.status == 304 and remote is not None:
                self.store.index.set_remote(
                    RemoteRow(url, remote.image_id, remote.etag, download.max_age, time.time())
                )
                return self.store.by_id(remote.image_id)
            if expect is not None:
                self._check_name(part, url, *expect)
            verified = self._check(part, sig, source=url)
            row = self.store.import_file(
                part,
                source=url,
                signature=sig,
                signer=verified.fingerprint if verified else None,
                latest=latest,
            )
            self.store.index.set_remote(RemoteRow(url, row.id, download.etag, download.max_age, time.time()))
            for leftover in (part, part + ".json"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return row

    def _cached(self, url: str, policy: PullPolicy) -> ImageRow | None:
        remote = self.store.index.remote(url)
        if remote is None or self.store.index.image(remote.image_id) is None:
            if policy is PullPolicy.NEVER:
                raise ImageNotFound(f"{url} is not in the store", hint="fetch it, or use --pull-policy=new")
            return None
        if policy is PullPolicy.UPDATE and not remote.fresh(time.time()):
            return None
        return self.store.by_id(remote.image_id)

    # -- names (discovery) ---------------------------------------------------------------------------

    def fetch_name(
        self, ref: ImageRef, signature_path: str | None, *, policy: PullPolicy | None = None
    ) -> ImageRow:
        policy = policy or self.options.pull_policy
        name, asked = ref.target, ref.labels
        defaults = host_labels()
        stored = next(
            (r for r in self.store.index.by_name(name) if labels_match(r.labels, asked, defaults)), None
        )
        if policy is not PullPolicy.UPDATE:
            if stored is not None:
                return stored
            if policy is PullPolicy.NEVER:
                raise ImageNotFound(
                    f"{ref.text} is not in the store", hint="fetch it, or use --pull-policy=new"
                )
        from stage0.images.fetch.discovery import DiscoveryError, discover
        from stage0.images.fetch.http import FetchError
        from stage0.images.trust.verify import SignatureError

        try:
            endpoints = discover(name, {**defaults, **asked}, self._page)
        except DiscoveryError as error:
            return self._offline(stored, ref.text, error)
        self._ensure_keys(name, endpoints)
        if not self.options.skips(InsecureOption.IMAGE) and not self.keystore.keys_for(name):
            # refused before a byte of the image is downloaded
            raise SignatureError(
                f"no key is trusted for {name}",
                hint=f"nspod trust --prefix {name} [KEY], or --trust-keys-from-https",
            )
        failures = []
        for aci, asc in endpoints.acis:
            try:
                return self.fetch_url(
                    aci,
                    signature_path=signature_path,
                    asc_url=asc,
                    expect=(name, asked),
                    latest="version" not in asked,
                    policy=policy,
                )
            except FetchError as error:
                failures.append(error.message)
        return self._offline(
            stored, ref.text, FetchError(f"no endpoint for {ref.text} worked: {'; '.join(failures)}")
        )

    def _offline(self, stored: ImageRow | None, what: str, error: Error) -> ImageRow:
        """Under pull policy ``update``, a remote that cannot be had leaves the stored image in use."""
        if stored is None:
            raise error
        self.say(f"warning: {error.message}\n  using {what} from the store ({stored.id[:19]}…)")
        return stored

    def _page(self, url: str) -> str:
        """A discovery page; a FetchError saying why there is none (the walk goes on)."""
        from stage0.images.fetch.http import FetchError

        candidates = [url] + ([url.replace("https://", "http://", 1)] if self.http.allow_http else [])
        failure = FetchError(f"no page at {url}")
        for candidate in candidates:
            try:
                return self.http.page(candidate)
            except FetchError as error:
                failure = error
        raise failure

    def _ensure_keys(self, name: str, endpoints: Endpoints) -> None:
        """With --trust-keys-from-https, trust the keys discovery announces if none are trusted yet."""
        if self.options.skips(InsecureOption.IMAGE) or self.keystore.keys_for(name):
            return
        if not self.options.trust_keys_from_https or not endpoints.keys:
            return  # the signature check will say what is missing
        from stage0.images.trust.verify import read_keys

        for url in endpoints.keys:
            if not url.startswith("https://") and not self.options.skips(InsecureOption.PUBKEY):
                continue
            response = self.http.get(url)
            if response.status != 200:
                continue
            for key in read_keys(response.body, url):
                _, new = self.keystore.add(key.fingerprint, key.armored, endpoints.key_prefix or name)
                if new:
                    self.say(
                        f"Trusting key {key.fingerprint} for prefix {endpoints.key_prefix or name}, "
                        f"fetched from {url}"
                    )

    # -- checks --------------------------------------------------------------------------------------

    def _read_signature(self, path: str, *, required: bool) -> bytes | None:
        if self.options.skips(InsecureOption.IMAGE):
            return None
        try:
            with open(path, "rb") as file:
                return file.read()
        except FileNotFoundError:
            if required:
                raise InputError(f"signature file {path} not found") from None
            return None

    def _remote_signature(self, path: str | None, asc_url: str) -> bytes:
        if path is not None:
            sig = self._read_signature(path, required=True)
            assert sig is not None
            return sig
        from stage0.images.trust.verify import SignatureError

        response = self.http.get(asc_url)
        if response.status != 200:
            raise SignatureError(
                f"no signature for the image at {asc_url} (HTTP {response.status})",
                hint="images are verified by default; --insecure-options=image skips it",
            )
        return response.body

    def _check(self, path: str, signature: bytes | None, *, source: str) -> Verified | None:
        if self.options.skips(InsecureOption.IMAGE):
            return None
        from stage0.images.aci.archive import read_manifest_bytes  # an ACI's alone (start-up time)
        from stage0.images.trust.verify import SignatureError, verify_file
        from stage0.schema.boundary import parse_image_manifest

        manifest = parse_image_manifest(read_manifest_bytes(path), f"{source}:manifest")
        if signature is None:
            raise SignatureError(
                f"{source} is not signed (no .asc next to it)",
                hint="pass --signature FILE, or --insecure-options=image to skip the check",
            )
        keys = self.keystore.keys_for(str(manifest.name))
        if not keys:
            raise SignatureError(
                f"no key is trusted for {manifest.name}",
                hint=f"nspod trust --prefix {manifest.name} [KEY], or --trust-keys-from-https",
            )
        verified = verify_file(path, signature, keys, what=source)
        self.say(f"signature verified:\n  {', '.join(verified.user_ids) or verified.fingerprint}")
        return verified

    def _check_name(self, path: str, url: str, name: str, asked: Mapping[str, str]) -> None:
        from stage0.images.aci.archive import read_manifest_bytes
        from stage0.schema.boundary import parse_image_manifest

        manifest = parse_image_manifest(read_manifest_bytes(path), f"{url}:manifest")
        labels = {str(x.name): x.value for x in manifest.labels}
        if manifest.name != name or not labels_match(labels, asked, host_labels()):
            raise ImageMismatch(f"{url} holds {manifest.name} {labels}, not {name} {dict(asked)}")


__all__ = ["FetchOptions", "Fetcher", "PullPolicy"]
