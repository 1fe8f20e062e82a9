"""HTTP as nspod's fetchers use it: which CA each host is checked against, credentials only over
TLS, plain HTTP only where allowed, downloads that resume, errors a user can act on.

The CA bundle is ``$SSL_CERT_FILE`` if set, else the system's; a registry may have its own
(``certs.d``). The connections themselves are stage0.images.fetch.transport's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stage0.errors import Error, ErrorKind
from stage0.images.fetch import transport
from stage0.images.fetch.auth import Credentials
from stage0.images.fetch.policy import Progress, Transfer
from stage0.images.fetch.wire import HTTPError

log = logging.getLogger(__name__)

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
MAX_SMALL = 4 << 20  # discovery pages, signatures, keys


class FetchError(Error):
    kind = ErrorKind.UNAVAILABLE
    hint = "check the address and the network; --debug shows each request"


class InsecureRefused(FetchError):
    kind = ErrorKind.PERMISSION_DENIED
    hint = "use https, or allow it explicitly with --insecure-options=http"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    url: str


@dataclass(frozen=True, slots=True)
class Download:
    status: int  # 200/206 downloaded (to path), 304 not modified
    path: str
    etag: str | None
    max_age: int


class Reply:
    """An answer whose body is read as it arrives; a context manager."""

    def __init__(self, response: transport.Response) -> None:
        self._response = response
        self.status: int = response.status
        self.reason: str = response.reason
        self.headers: Mapping[str, str] = response.headers
        self.url: str = response.url

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        try:
            yield from self._response.chunks(size)
        except (OSError, HTTPError) as error:
            raise FetchError(f"{self.url}: the transfer broke off: {error}",
                             hint="run the command again to resume") from None  # fmt: skip

    def small(self, limit: int = MAX_SMALL) -> bytes:
        body = b"".join(self.chunks(limit + 1))
        if len(body) > limit:
            raise FetchError(f"{self.url}: response larger than {limit} bytes")
        return body

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def max_age(headers: Mapping[str, str]) -> int:
    """Seconds the response may be reused without asking again (Cache-Control)."""
    control = headers.get("Cache-Control", "").lower()
    if "no-cache" in control or "no-store" in control:
        return 0
    match = re.search(r"max-age=(\d+)", control)
    return int(match.group(1)) if match else 0


class Http:
    def __init__(
        self,
        *,
        insecure_tls: bool = False,
        allow_http: bool = False,
        auth: Mapping[str, Credentials] | None = None,
        config_dirs: tuple[str, ...] = (),
        insecure_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self._pool = transport.Pool()
        self._verify = (  # "" checks nothing, "system" is OpenSSL's default store
            ""
            if insecure_tls
            else (os.environ.get("SSL_CERT_FILE") or (SYSTEM_CA if os.path.exists(SYSTEM_CA) else "system"))
        )
        self.allow_http = allow_http
        self._auth = dict(auth or {})
        self._insecure_tls = insecure_tls
        self.config_dirs = config_dirs
        self.insecure_hosts = insecure_hosts  # HOST[:PORT]: plain HTTP and any certificate allowed

    def _verify_for(self, url: str) -> str:
        """A host's own CA (``certs.d/HOST[:PORT]/*.crt`` in the local, then the system config,
        as the containers tools keep them), else the bundle every host is checked against."""
        host = urlsplit(url).netloc
        if host in self.insecure_hosts:
            return ""
        if not self._insecure_tls and host:
            for directory in reversed(self.config_dirs):
                certs = os.path.join(directory, "certs.d", host)
                if os.path.isdir(certs):
                    found = sorted(n for n in os.listdir(certs) if n.endswith(".crt"))
                    if found:
                        return os.path.join(certs, found[0])
        return self._verify

    def close(self) -> None:
        self._pool.close()

    def credentials(self, host: str) -> Credentials | None:
        """auth.d's credentials for a host (``host:port`` first, then the bare host name)."""
        return self._auth.get(host.lower()) or self._auth.get(urlsplit("//" + host).hostname or "")

    def _headers(self, url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        parts = urlsplit(url)
        headers = {"User-Agent": "nspod", **(extra or {})}
        creds = self._auth.get((parts.hostname or "").lower())
        # credentials only over TLS, unless the user allowed plain HTTP altogether
        if (
            "Authorization" not in headers
            and creds is not None
            and (parts.scheme == "https" or self.allow_http)
        ):
            headers["Authorization"] = creds.header
        return headers

    def _check_scheme(self, url: str) -> None:
        scheme = urlsplit(url).scheme
        if scheme == "http" and not self.allow_http and urlsplit(url).netloc not in self.insecure_hosts:
            raise InsecureRefused(f"refusing plain HTTP: {url}")
        if scheme not in ("http", "https"):
            raise FetchError(f"unsupported URL {url}")

    def call(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, *, authorization: str = ""
    ) -> Reply:
        """Any request, its body streamed; ``authorization`` replaces auth.d's credentials."""
        extra = {**(headers or {}), **({"Authorization": authorization} if authorization else {})}
        return self._request(url, extra, method=method)

    def _allows_http(self, url: str) -> bool:
        return self.allow_http or urlsplit(url).netloc in self.insecure_hosts

    def _request(self, url: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> Reply:
        self._check_scheme(url)
        log.debug("%s %s", method, url)
        try:
            response = self._pool.send(
                method, url, self._headers(url, headers), self._verify_for, self._allows_http
            )
        except transport.Insecure as error:
            raise InsecureRefused(f"{url} redirected to plain HTTP {error}") from None
        except (OSError, HTTPError) as error:
            _tls_failure(error, url)
            raise FetchError(f"{transport.describe(error, _host(url))} ({url})") from None
        return Reply(response)

    def get(self, url: str) -> Response:
        """A small document (page, key, signature), read whole; any status."""
        with self._request(url) as reply:
            return Response(reply.status, reply.small(), reply.url)

    def page(self, url: str) -> str:
        """A page's text (HTTP 200); otherwise a FetchError naming the status and URL."""
        response = self.get(url)
        if response.status != 200:
            raise FetchError(f"HTTP {response.status} at {url}")
        return response.body.decode("utf-8", "replace")

    def download(
        self, url: str, part: str, *, etag: str | None = None, progress: Progress | None = None
    ) -> Download:
        """Download ``url`` into ``part``, resuming what is there (``part.json`` remembers the ETag).

        With ``etag`` (from the store) a 304 means "unchanged" and nothing is written.
        """
        meta_path = part + ".json"
        have = os.path.getsize(part) if os.path.exists(part) else 0
        meta = _read_meta(meta_path) if have else {}
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if have and meta.get("url") == url and meta.get("etag"):
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = str(meta["etag"])
        with self._request(url, headers) as response:
            if response.status == 304:
                return Download(304, part, etag, max_age(response.headers))
            if response.status == 416 and have and meta.get("size") == have:
                return Download(200, part, meta.get("etag"), max_age(response.headers))  # already complete
            if response.status not in (200, 206):
                raise FetchError(
                    f"{url}: HTTP {response.status} {response.reason}",
                    hint="401/403: see auth.d; 404: check the name and version",
                )
            resumed = response.status == 206
            new_etag = response.headers.get("ETag")
            total = _total_size(response.headers, have if resumed else 0)
            with open(meta_path, "w") as file:
                json.dump({"url": url, "etag": new_etag, "size": total}, file)
            mode = "ab" if resumed else "wb"
            done = have if resumed else 0
            if resumed:
                log.info("resuming %s at byte %d", url, have)
            try:
                with open(part, mode) as out:
                    for chunk in response.chunks():
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(Transfer(url, done, total))
                    out.flush()
                    os.fsync(out.fileno())
            finally:
                if progress:
                    progress(Transfer(url, done, total, finished=True))
            if total is not None and done != total:
                raise FetchError(
                    f"{url}: got {done} of {total} bytes", hint="run the command again to resume"
                )
            return Download(response.status, part, new_etag, max_age(response.headers))


def _read_meta(path: str) -> dict[str, Any]:
    try:
        with open(path) as file:
            meta = json.load(file)
            return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _total_size(headers: Mapping[str, str], offset: int) -> int | None:
    match = re.match(r"bytes \d+-\d+/(\d+)", headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _tls_failure(error: BaseException, url: str) -> None:
    """Raises what a TLS failure means to the user; returns for any other error."""
    ssl = sys.modules.get("ssl")  # loaded by the first https connection: no TLS error before it
    if ssl is None:
        return
    if isinstance(error, ssl.SSLCertVerificationError):
        raise FetchError(
            f"TLS verification of {_host(url)} failed: {error.verify_message or 'the certificate'}",
            hint="is the server's CA trusted ($SSL_CERT_FILE)? --insecure-options=tls skips the check",
        ) from None
    if isinstance(error, ssl.SSLError):
        if "WRONG_VERSION_NUMBER" in str(error).upper():
            raise InsecureRefused(
                f"{_host(url)} does not speak TLS (plain HTTP?): {url}",
                hint="allow plain HTTP with --insecure-options=http (or, for a registry,"
                " 'insecure = HOST:PORT' in registries.conf)",
            ) from None
        raise FetchError(f"TLS with {_host(url)} failed: {error.reason or error}") from None


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url
