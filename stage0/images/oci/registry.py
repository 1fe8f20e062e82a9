"""A client of the registry HTTP API v2 (the OCI distribution spec), on the project's HTTP adapter:
authorization by challenge (Basic, or Bearer tokens from the registry's token service), manifests
asked for with every type nspod reads and checked against their digest, blobs streamed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import urlencode

from stage0.errors import ErrorKind
from stage0.images.fetch.auth import Credentials
from stage0.images.fetch.http import FetchError, Http, Reply
from stage0.images.oci.manifest import ACCEPT, MAX_DOCUMENT, check_digest, digest_of
from stage0.images.oci.reference import OciRef

API_HOSTS = {"docker.io": "registry-1.docker.io"}


class RegistryError(FetchError):
    kind = ErrorKind.UNAVAILABLE
    hint = "check the image reference; for a private registry, its credentials (auth.d, auth.json)"


class AccessDenied(RegistryError):
    """The registry wants credentials it was not given, or refuses those it was."""

    kind = ErrorKind.PERMISSION_DENIED


class NotFound(RegistryError):
    kind = ErrorKind.NOT_FOUND
    hint = "check the repository and tag ('skopeo list-tags' or the registry's web page lists them)"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="…",service="…",scope="…"`` → ("bearer", {…})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params


def _login(registry: str) -> str:
    return f"credentials for {registry}: nspod's auth.d, containers' auth.json or ~/.docker/config.json"


class Registry:
    """One repository of one registry; keeps the authorization it obtained."""

    remote = True

    def __init__(
        self, http: Http, ref: OciRef, credentials: Credentials | None, *, plain_http: bool
    ) -> None:
        self.http, self.ref, self.credentials = http, ref, credentials
        host = API_HOSTS.get(ref.registry, ref.registry)
        self.base = f"{'http' if plain_http else 'https'}://{host}/v2/{ref.repository}"
        self._authorization = ""

    def _send(self, method: str, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        url = f"{self.base}/{path}"
        reply = self.http.call(method, url, headers, authorization=self._authorization)
        if reply.status == 401:
            challenge = reply.headers.get("WWW-Authenticate", "")
            reply.close()
            self._authorization = self._authorize(challenge)
            reply = self.http.call(method, url, headers, authorization=self._authorization)
        if reply.status in (401, 403):
            reply.close()
            raise AccessDenied(
                f"{self.ref.registry} refused access to {self.ref.repository} (HTTP {reply.status})",
                hint=_login(self.ref.registry),
            )
        return reply

    def _authorize(self, challenge: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.credentials is None:
                raise AccessDenied(
                    f"{self.ref.registry} wants a user name and password",
                    hint=_login(self.ref.registry),
                )
            return self.credentials.header
        if scheme != "bearer" or not params.get("realm", "").startswith(("https://", "http://")):
            raise RegistryError(
                f"{self.ref.registry} asks for an authorization nspod does not know: {challenge!r}"
            )
        if self.credentials is not None and self.credentials.header.startswith("Bearer "):
            return self.credentials.header  # a registry token (a CRI auth config's): the token itself
        query = {"scope": params.get("scope") or f"repository:{self.ref.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        url = f"{params['realm']}?{urlencode(query)}"
        header = self.credentials.header if self.credentials else ""
        with self.http.call("GET", url, authorization=header) as reply:
            if reply.status != 200:
                raise AccessDenied(
                    f"the token service of {self.ref.registry} refused (HTTP {reply.status})",
                    hint=f"check the credentials for {self.ref.registry}",
                )
            try:
                answer = json.loads(reply.small())
                token = answer.get("token") or answer.get("access_token")
            except (ValueError, AttributeError):
                token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service of {self.ref.registry} gave no token")
        return f"Bearer {token}"

    def manifest_digest(self, reference: str) -> str | None:
        """The digest a tag points at now (HEAD: one request, no body), if the registry says."""
        with self._send("HEAD", f"manifests/{reference}", {"Accept": ACCEPT}) as reply:
            if reply.status != 200:
                return None
            return reply.headers.get("Docker-Content-Digest") or None

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(body, served media type, digest) of a manifest or index, the body checked."""
        with self._send("GET", f"manifests/{reference}", {"Accept": ACCEPT}) as reply:
            if reply.status == 404:
                raise NotFound(f"{self.ref.canonical()}: no such manifest on {self.ref.registry}")
            if reply.status != 200:
                raise RegistryError(f"{self.ref.canonical()}: HTTP {reply.status} for the manifest")
            body = reply.small(MAX_DOCUMENT)
            expected = reference if reference.startswith("sha") and ":" in reference else ""
            expected = expected or reply.headers.get("Docker-Content-Digest", "")
            media = reply.headers.get("Content-Type", "")
        algorithm = expected.split(":")[0] if expected else "sha256"
        if algorithm not in ("sha256", "sha512"):
            raise RegistryError(f"{self.ref.canonical()}: unknown digest algorithm {algorithm}")
        if expected:
            check_digest(body, expected, self.ref.canonical())
        return body, media, expected or digest_of(body, algorithm)

    def blob(self, digest: str, offset: int = 0) -> Reply:
        """A blob's body, streamed (from ``offset``: the server may answer 200 with all of it)."""
        headers = {"Range": f"bytes={offset}-"} if offset else None
        reply = self._send("GET", f"blobs/{digest}", headers)
        if reply.status == 404:
            reply.close()
            raise NotFound(f"{self.ref.canonical()}: the registry has no blob {digest}")
        if reply.status not in (200, 206):
            reply.close()
            raise RegistryError(f"{self.ref.canonical()}: HTTP {reply.status} for blob {digest}")
        return reply

    def small_blob(self, digest: str) -> bytes:
        """A small blob (an image config), checked against its digest."""
        with self.blob(digest) as reply:
            return check_digest(reply.small(MAX_DOCUMENT), digest, self.ref.canonical())
