"""stage0/images/fetch/wire.py: answers read from bytes as a server writes them (lengths, chunks, the
close), the request as written on a real socket pair, and the malformed answers refused."""

from __future__ import annotations

import io
import socket
import threading

import pytest

from stage0.images.fetch.wire import Answer, Connection, HTTPError, RemoteDisconnected


def answer(raw: bytes, method: str = "GET") -> Answer:
    return Answer(io.BufferedReader(io.BytesIO(raw)), method)


def test_a_body_of_known_length_is_read_in_pieces() -> None:
    got = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: x\r\n\r\n0123456789extra")
    assert (got.status, got.reason, got.headers.get("etag"), got.will_close) == (200, "OK", "x", False)
    assert got.read(4) == b"0123" and got.length == 6 and not got.isclosed()
    assert got.read(100) == b"456789" and got.isclosed() and got.read(1) == b""


def test_a_chunked_body_is_joined_across_chunks() -> None:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-T: 1\r\n\r\n"
    got = answer(raw)
    assert got.read(5) == b"abcde" and got.read(-1) == b"fg" and got.isclosed()


def test_no_length_means_up_to_the_close() -> None:
    got = answer(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    assert got.will_close and got.read(-1) == b"all of it" and got.isclosed()


@pytest.mark.parametrize(("raw", "method"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD"),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", "GET"),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", "GET"),
])  # fmt: skip
def test_answers_without_a_body(raw: bytes, method: str) -> None:
    got = answer(raw, method)
    assert got.isclosed() and got.read(10) == b"" and got.status in (200, 204, 304)


def test_a_folded_header_goes_on() -> None:
    got = answer(b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer a=1,\r\n b=2\r\nContent-Length: 0\r\n\r\n")
    assert got.headers["www-authenticate"] == "Bearer a=1, b=2"


def test_connection_close_and_http_1_0_keep_alive() -> None:
    assert answer(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").will_close
    kept = answer(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert not kept.will_close


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
    b"HTTP/1.1 200 OK\r\nX: " + b"a" * (65 << 10) + b"\r\n\r\n",
])  # fmt: skip
def test_malformed_heads_are_refused(raw: bytes) -> None:
    with pytest.raises(HTTPError):
        answer(raw)


def test_a_short_body_or_chunk_is_an_error() -> None:
    with pytest.raises(HTTPError, match="short"):
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123").read(10)
    with pytest.raises(HTTPError):
        answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").read(10)


def test_a_closed_connection_is_remote_disconnected() -> None:
    with pytest.raises(RemoteDisconnected):
        answer(b"")
    assert issubclass(RemoteDisconnected, ConnectionResetError)


def test_the_request_as_written_and_its_answer() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            data = b""
            while not data.endswith(b"\r\n\r\n"):
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

    thread = threading.Thread(target=serve)
    thread.start()
    port = server.getsockname()[1]
    conn = Connection("127.0.0.1", port, 5.0)
    try:
        got = conn.request("GET", "/v2/?a=1", {"Authorization": "Bearer t"})
        assert got.read(-1) == b"hi"
        with pytest.raises(ValueError, match="line break"):
            conn.request("GET", "/", {"X": "a\r\nInjected: 1"})
    finally:
        conn.close()
        thread.join()
        server.close()
    lines = seen[0].decode().split("\r\n")
    assert lines[0] == "GET /v2/?a=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in lines and "Authorization: Bearer t" in lines
    assert "Accept-Encoding: identity" in lines
