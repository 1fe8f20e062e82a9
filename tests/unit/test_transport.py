"""stage0.images.fetch.transport against real sockets on 127.0.0.1: kept-alive connections, redirects that
drop credentials off the host, proxies (plain and CONNECT) chosen by the environment."""

from __future__ import annotations

import contextlib
import http.server
import select
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from stage0.images.fetch import transport
from stage0.images.fetch.http import FetchError, Http, InsecureRefused


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, str, int]]] = []  # path, Authorization, Host, client port

    def do_GET(self) -> None:
        if self.path.startswith("http://"):  # relayed as it came by the proxy
            self.path = "/" + self.path.split("/", 3)[3]
        self.seen.append((self.path, self.headers.get("Authorization", ""), self.headers["Host"],
                          self.client_address[1]))  # fmt: skip
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            target = self.path.removeprefix("/redirect/")
            self.send_header("Location", target if target.startswith("http:") else "/" + target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"x" * 1000 if self.path == "/big" else self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/drop":  # closed after the answer without saying so, as idle timeouts do
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def server() -> Iterator[tuple[str, list[tuple[str, str, str, int]]]]:
    seen: list[tuple[str, str, str, int]] = []
    handler = type("H", (Handler,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{httpd.server_port}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy: CONNECT tunnels, and absolute-URI GETs relayed as they are."""
    asked: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def relay(a: socket.socket, b: socket.socket) -> None:
        while True:
            ready, _, _ = select.select([a, b], [], [], 5)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (b if sock is a else a).sendall(data)
            if not ready:
                return

    def serve(client: socket.socket) -> None:
        with contextlib.suppress(OSError), client:  # a client that hangs up is no failure of ours
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            first = head.split(b"\r\n", 1)[0].decode()
            asked.append(first)
            method, target, _ = first.split(" ")
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                netloc = target.split("/")[2]
                host, port = netloc.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)))
                upstream.sendall(head)
            with upstream:
                relay(client, upstream)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", asked
    finally:
        listener.close()


def test_proxy_for_reads_the_environment_as_curl_does() -> None:
    env = {"https_proxy": "proxy:3128", "HTTP_PROXY": "http://p2:8080", "no_proxy": "internal,.corp:443"}
    assert transport.proxy_for("https://quay.io/v2/", env) == "http://proxy:3128"
    assert transport.proxy_for("http://quay.io/", env) == "http://p2:8080"
    assert transport.proxy_for("https://internal/x", env) is None
    assert transport.proxy_for("https://a.internal/x", env) is None
    assert transport.proxy_for("https://reg.corp/x", env) is None
    assert transport.proxy_for("https://reg.corp:5000/x", env) == "http://proxy:3128"
    assert transport.proxy_for("https://x", {**env, "NO_PROXY": "*", "no_proxy": ""}) is None
    assert transport.proxy_for("https://x", {}) is None


def test_connections_are_kept_alive_and_shared() -> None:
    http = Http(allow_http=True)
    with server() as (host, seen):
        for path in ("/a", "/big", "/c"):
            assert http.get(f"http://{host}{path}").status == 200
        with http.call("GET", f"http://{host}/big") as reply:
            reply.small(10_000)
        assert len({port for *_, port in seen}) == 1  # one connection for all four
    http.close()


def test_a_broken_kept_connection_is_retried_once_fresh() -> None:
    http = Http(allow_http=True)
    with server() as (host, seen):
        assert http.get(f"http://{host}/drop").body == b"/drop"
        assert http.get(f"http://{host}/b").body == b"/b"
        assert seen[0][3] != seen[1][3]  # the second on a new connection


def test_redirects_drop_credentials_off_the_host() -> None:
    http = Http(allow_http=True)
    with server() as (a, seen_a), server() as (b, seen_b):
        reply = http.call("GET", f"http://{a}/redirect/x", authorization="Bearer secret")
        assert reply.status == 200 and reply.small() == b"/x"
        reply.close()
        assert seen_a[-1][:2] == ("/x", "Bearer secret")  # same host: kept
        other = f"http://{a}/redirect/http://{b}/y"
        with http.call("GET", other, authorization="Bearer secret") as reply:
            assert reply.small() == b"/y" and reply.url == f"http://{b}/y"
        assert seen_b[-1][:2] == ("/y", "")  # another host: dropped


def test_redirect_to_plain_http_refused_from_https_only_clients() -> None:
    http = Http()
    with pytest.raises(InsecureRefused):
        http.get("http://127.0.0.1:1/")


def test_refused_connection_is_one_clear_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(FetchError, match=r"connection refused by 127\.0\.0\.1"):
        Http(allow_http=True).get(f"http://127.0.0.1:{port}/")


def test_plain_http_goes_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with server() as (host, _), proxy() as (address, asked):
        monkeypatch.setenv("http_proxy", address)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        assert Http(allow_http=True).get(f"http://{host}/p").body == b"/p"
        assert asked == [f"GET http://{host}/p HTTP/1.1"]
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        assert Http(allow_http=True).get(f"http://{host}/q").body == b"/q"
        assert len(asked) == 1


def test_https_tunnels_through_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """CONNECT, then TLS inside the tunnel: the proxy sees the host and port only. The server here
    speaks plain HTTP, so the handshake fails — after the proxy was asked, as it should be."""
    with server() as (host, _), proxy() as (address, asked):
        monkeypatch.setenv("https_proxy", address)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        with pytest.raises(FetchError):
            Http().get(f"https://{host}/t")
        assert asked == [f"CONNECT {host} HTTP/1.0"] or asked[0].startswith(f"CONNECT {host} ")
