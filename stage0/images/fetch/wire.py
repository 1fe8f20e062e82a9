"""HTTP/1.1 on one socket, for stage0/images/fetch/transport.py: a connection (plain, TLS, or TLS
through a proxy's CONNECT tunnel), a request written, its answer read as it arrives (a length, a
chunked body, or the body up to the close).

Why not http.client: importing it loads the email package (its header parser) and ssl, 10–15 % of
the fetch path's imports (python -X importtime), paid by every fetching command (bench/pull). ssl is
loaded here only when an https origin is reached; headers are parsed as the registry protocol
needs them (names case-insensitive, the first value of a repeated name).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

MAX_LINE = 64 << 10  # a status or header line, a chunk's size line
MAX_HEADERS = 200
NO_BODY = frozenset({204, 304})


class HTTPError(Exception):
    """The server broke the HTTP exchange (a bad status line, a header too long, a body cut short)."""


class RemoteDisconnected(ConnectionResetError, HTTPError):
    """The server closed the connection before answering: a kept-alive one it had let go."""


class Headers(Mapping[str, str]):
    """Header fields, their names case-insensitive; a repeated name's first value."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields: dict[str, str] = {}
        for name, value in fields:
            self._fields.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def _line(file: BinaryIO) -> bytes:
    line = file.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HTTPError("a line longer than 64 KiB")
    return line


def read_head(file: BinaryIO) -> tuple[str, int, str, Headers]:
    """The status line and header fields of one answer: (version, status, reason, headers)."""
    line = _line(file)
    if not line:
        raise RemoteDisconnected("the server closed the connection without an answer")
    version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise HTTPError(f"bad status line {line[:80]!r}")
    fields: list[tuple[str, str]] = []
    while (field := _line(file)) not in (b"\r\n", b"\n"):
        if not field:
            raise HTTPError("the header ended early")
        if len(fields) >= MAX_HEADERS:
            raise HTTPError(f"more than {MAX_HEADERS} header fields")
        if field[:1] in (b" ", b"\t") and fields:  # an obsolete folded line: the value goes on
            name, value = fields.pop()
            fields.append((name, f"{value} {field.decode('latin-1').strip()}"))
            continue
        name, colon, value = field.decode("latin-1").partition(":")
        if not colon:
            raise HTTPError(f"bad header line {field[:80]!r}")
        fields.append((name.strip(), value.strip()))
    return version, int(code), reason.strip(), Headers(fields)


class Answer:
    """One answer; its body read with read(), the connection reusable once it is whole."""

    def __init__(self, file: BinaryIO, method: str) -> None:
        version, status, reason, headers = read_head(file)
        while 100 <= status < 200:  # 100 Continue and the like come before the answer
            version, status, reason, headers = read_head(file)
        self.status, self.reason, self.headers = status, reason, headers
        self._file: BinaryIO | None = file
        tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
        self.will_close = "close" in tokens or (version == "HTTP/1.0" and "keep-alive" not in tokens)
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self._chunk_left = 0  # of the current chunk
        self.length: int | None = None  # what is left of a body whose length is known
        if method == "HEAD" or status in NO_BODY:
            self.length = 0
        elif not self.chunked and "Content-Length" in headers:
            text = headers["Content-Length"].strip()
            if not text.isdigit():
                raise HTTPError(f"bad Content-Length {text[:40]!r}")
            self.length = int(text)
        elif not self.chunked:
            self.will_close = True  # the body is what comes before the close
        if self.length == 0:
            self._file = None

    def isclosed(self) -> bool:
        return self._file is None

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when negative); b"" at its end."""
        file = self._file
        if file is None:
            return b""
        if self.chunked:
            return self._read_chunked(file, size)
        if self.length is None:
            data = file.read(size)
            if not data or size < 0:
                self._file = None
            return data
        want = self.length if size < 0 else min(size, self.length)
        data = file.read(want)
        self.length -= len(data)
        if len(data) < want:
            self._file = None
            raise HTTPError(f"the body ended {self.length} bytes short")
        if not self.length:
            self._file = None
        return data

    def _read_chunked(self, file: BinaryIO, size: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            if not self._chunk_left:
                line = _line(file).split(b";", 1)[0].strip()
                try:
                    self._chunk_left = int(line, 16)
                except ValueError:
                    raise HTTPError(f"bad chunk size {line[:40]!r}") from None
                if not self._chunk_left:
                    while _line(file) not in (b"\r\n", b"\n", b""):  # the trailer
                        pass
                    self._file = None
                    break
            want = self._chunk_left if size < 0 else min(self._chunk_left, size - got)
            data = file.read(want)
            if len(data) < want:
                self._file = None
                raise HTTPError("a chunk ended early")
            parts.append(data)
            got += len(data)
            self._chunk_left -= len(data)
            if not self._chunk_left:
                _line(file)  # the CRLF after the chunk
        return b"".join(parts)

    def close(self) -> None:
        self._file = None


class Connection:
    """One connection to ``host``: through ``tunnel`` (the origin's host, port and the proxy's
    headers) when host is a proxy, TLS with ``context`` when given."""

    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext | None = None,
                 tunnel: tuple[str, int, Mapping[str, str]] | None = None) -> None:  # fmt: skip
        self.host, self.port, self.timeout, self.context, self.tunnel = host, port, timeout, context, tunnel
        self.sock: socket.socket | None = None
        self._file: BinaryIO | None = None

    def connect(self) -> None:
        # an ASCII name as bytes: a str is encoded by the idna codec, whose import is ~1 ms
        host: str | bytes = self.host.encode() if self.host.isascii() else self.host
        sock = socket.create_connection((host, self.port), self.timeout)  # type: ignore[arg-type]
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server = self.host
            if self.tunnel is not None:
                server, port, headers = self.tunnel
                self._write(
                    sock, "CONNECT", f"{_bracket(server)}:{port}", {**headers}, f"{_bracket(server)}:{port}"
                )
                with sock.makefile("rb") as file:
                    _, status, reason, _ = read_head(file)
                if status != 200:
                    raise OSError(f"the proxy's tunnel failed: {status} {reason}")
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=server)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._file = sock.makefile("rb")

    def request(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        """Write the request (no body: nspod only reads) and read the answer's head."""
        if self.sock is None or self._file is None:
            self.connect()
        assert self.sock is not None and self._file is not None
        if path.startswith(("http://", "https://")):  # to a proxy: the origin is the URL's
            host = urlsplit(path).netloc
        else:
            default = 443 if self.context is not None else 80
            name, port = (self.tunnel[0], self.tunnel[1]) if self.tunnel else (self.host, self.port)
            host = _bracket(name) + ("" if port == default else f":{port}")
        self._write(self.sock, method, path, headers, host)
        return Answer(self._file, method)

    @staticmethod
    def _write(sock: socket.socket, method: str, target: str, headers: Mapping[str, str], host: str) -> None:
        named = {name.lower() for name in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [] if "host" in named else [f"Host: {host}"]
        lines += [] if "accept-encoding" in named else ["Accept-Encoding: identity"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"a line break in a request header: {line[:80]!r}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def close(self) -> None:
        file, sock, self._file, self.sock = self._file, self.sock, None, None
        if file is not None:
            file.close()
        if sock is not None:
            sock.close()


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
