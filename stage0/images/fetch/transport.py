"""HTTP/1.1 on the standard library: kept-alive connections per origin, TLS, proxies, redirects.

Why not requests: it and urllib3 cost ~40 ms of imports on every fetching command, a quarter
of a 100 MB pull here (bench/pull); http.client (with email and ssl) 10–15 % of what was left,
so the wire is nspod's own (stage0/images/fetch/wire.py) and ssl is loaded for https alone. What
nspod needs of a client is small and lives here: a pool of idle connections per origin shared
by the layer threads, the proxy settings every HTTP tool honours (``https_proxy``,
``http_proxy``, ``no_proxy``, lower case first, as curl reads them), redirects that drop
credentials when they leave the host, and one retry when a kept-alive connection turns out to
have been closed by the server.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from stage0.images.fetch.wire import Answer, Connection, HTTPError, RemoteDisconnected

if TYPE_CHECKING:
    import ssl

CONNECT_TIMEOUT, READ_TIMEOUT = 15.0, 60.0
MAX_REDIRECTS = 10
MAX_IDLE = 10  # connections kept per origin (the layer threads' parallelism and then some)
DRAIN = 64 << 10  # an unread body up to this size is read so the connection can be kept
REDIRECTS = frozenset({301, 302, 303, 307, 308})

Origin = tuple[str, str, int, str]  # scheme, host, port, CA (or "" when unchecked)


class Insecure(Exception):
    """A redirect to plain HTTP the caller did not allow."""


def proxy_for(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL for ``url`` from the environment, or None (no proxy, or ``no_proxy`` names it)."""
    env = os.environ if env is None else env
    parts = urlsplit(url)

    def get(name: str) -> str:
        return env.get(name.lower()) or env.get(name.upper()) or ""

    proxy = get(f"{parts.scheme}_proxy") or get("all_proxy")
    if not proxy:
        return None
    host = (parts.hostname or "").lower()
    for entry in get("no_proxy").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return None
        name, _, port = entry.partition(":")
        if port and str(parts.port or (443 if parts.scheme == "https" else 80)) != port:
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return None
    return proxy if "://" in proxy else "http://" + proxy


class Response:
    """One answer, its body read as it arrives; close() hands the connection back when it can."""

    def __init__(self, pool: Pool, origin: Origin, conn: Connection, answer: Answer, url: str) -> None:
        self._pool, self._origin, self._conn, self._answer = pool, origin, conn, answer
        self.status: int = answer.status
        self.reason: str = answer.reason
        self.headers: Mapping[str, str] = answer.headers  # case-insensitive
        self.url = url

    def read(self, size: int) -> bytes:
        return self._answer.read(size)

    def chunks(self, size: int) -> Iterator[bytes]:
        while chunk := self._answer.read(size):
            yield chunk

    def close(self) -> None:
        answer, conn = self._answer, self._conn
        try:
            length = answer.length
            if not answer.isclosed() and (length is None or length > DRAIN):
                raise OSError("body left unread")
            answer.read()
            if answer.will_close:
                raise OSError("server closes")
        except (OSError, HTTPError):
            conn.close()
        else:
            self._pool.give_back(self._origin, conn)
        answer.close()


class Pool:
    def __init__(self) -> None:
        self._idle: dict[Origin, list[Connection]] = {}
        self._lock = threading.Lock()
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _context(self, ca: str) -> ssl.SSLContext:
        """``ca`` is a CA file, "system" for the default store, "" for no check at all."""
        import ssl  # an https origin's alone (start-up time)

        with self._lock:
            if ca not in self._contexts:
                if not ca:
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                else:
                    context = ssl.create_default_context(cafile=None if ca == "system" else ca)
                self._contexts[ca] = context
            return self._contexts[ca]

    def _connect(self, origin: Origin) -> Connection:
        scheme, host, port, ca = origin
        proxy = proxy_for(f"{scheme}://{host}:{port}/")
        if proxy is None:
            target, target_port, tunnel = host, port, False
        else:
            parts = urlsplit(proxy)
            target, target_port, tunnel = parts.hostname or "", parts.port or 80, scheme == "https"
        context = self._context(ca) if scheme == "https" else None
        through = (host, port, _proxy_auth(proxy or "")) if tunnel else None
        conn = Connection(target, target_port, CONNECT_TIMEOUT, context, through)
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(READ_TIMEOUT)
        return conn

    def give_back(self, origin: Origin, conn: Connection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < MAX_IDLE:
                idle.append(conn)
                return
        conn.close()

    def _take(self, origin: Origin) -> Connection | None:
        with self._lock:
            idle = self._idle.get(origin)
            return idle.pop() if idle else None

    def send(self, method: str, url: str, headers: Mapping[str, str], ca_for: Callable[[str], str],
             allow_http: Callable[[str], bool]) -> Response:  # fmt: skip
        """``method url``, following redirects (without ``Authorization`` once off the host)."""
        first = urlsplit(url).netloc
        headers = dict(headers)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._once(method, url, headers, ca_for(url))
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                return response
            response.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme == "http" and not allow_http(url):
                raise Insecure(url)
            if urlsplit(url).netloc != first:
                headers.pop("Authorization", None)
            if response.status == 303:
                method = "GET" if method != "HEAD" else method
        raise HTTPError(f"more than {MAX_REDIRECTS} redirects")

    def _once(self, method: str, url: str, headers: Mapping[str, str], ca: str) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme
        origin = (scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80),
                  ca if scheme == "https" else "")  # fmt: skip
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        proxy = proxy_for(url) if scheme == "http" else None  # https goes through a tunnel
        if proxy is not None:
            path, headers = url, {**headers, **_proxy_auth(proxy)}
        for attempt in (0, 1):
            kept = self._take(origin) if attempt == 0 else None
            conn = kept or self._connect(origin)
            try:
                answer = conn.request(method, path, headers)
            except (RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if kept is None:
                    raise
                continue  # the server closed the kept-alive connection meanwhile: once more, fresh
            except BaseException:
                conn.close()
                raise
            return Response(self, origin, conn, answer, url)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for idle in self._idle.values():
                for conn in idle:
                    conn.close()
            self._idle.clear()


def _proxy_auth(proxy: str) -> dict[str, str]:
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    import base64
    from urllib.parse import unquote

    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode()}


def describe(error: BaseException, host: str) -> str:
    """What went wrong on the way to ``host``, as a user reads it."""
    if isinstance(error, TimeoutError | socket.timeout):
        return f"{host} did not answer in time"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {host}"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {urlsplit('//' + host).hostname}"
    if isinstance(error, HTTPError):
        return f"{host} broke the HTTP exchange ({type(error).__name__}: {error})"
    return f"cannot connect to {host} ({getattr(error, 'strerror', None) or error})"
