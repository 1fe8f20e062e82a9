"""The CRI streaming server: what Exec, Attach and PortForward answer is a URL here
(``http://HOST:PORT/exec/TOKEN``, ``/attach/TOKEN``, ``/portforward/TOKEN``). Each token stands
for one request, is good once and for a minute, as kubelet's own streaming server does it; the
client upgrades its POST to SPDY/3.1, naming the sub-protocols it speaks in
X-Stream-Protocol-Version, and we answer 101 with the one we chose.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

import stage0.cri.streaming.portforward as portforward
import stage0.cri.streaming.remotecommand as remotecommand
from stage0.cri.streaming.backend import (
    AttachIO,
    AttachRequest,
    Backend,
    Container,
    ExecRequest,
    PortForwardRequest,
    Request,
)
from stage0.cri.streaming.session import Session, Stream
from stage0.errors import Error, ErrorKind

TOKEN_TTL = 60.0


class Tokens:
    """Single-use tokens that expire."""

    def __init__(self, ttl: float = TOKEN_TTL) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._requests: dict[str, tuple[float, Request]] = {}

    def put(self, request: Request) -> str:
        token = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            self._requests = {k: v for k, v in self._requests.items() if v[0] > now}
            self._requests[token] = (now + self._ttl, request)
        return token

    def take(self, token: str) -> Request | None:
        with self._lock:
            deadline, request = self._requests.pop(token, (0.0, None))
        return request if deadline > time.monotonic() else None


class _ExecLike(Protocol):  # the CRI's ExecRequest message, or ours
    @property
    def container_id(self) -> str: ...

    @property
    def tty(self) -> bool: ...

    @property
    def stdin(self) -> bool: ...

    @property
    def stdout(self) -> bool: ...

    @property
    def stderr(self) -> bool: ...


class InvalidRequest(Error):
    kind = ErrorKind.INVALID_ARGUMENT


def _check(request: _ExecLike) -> None:
    if not (request.stdin or request.stdout or request.stderr):
        raise InvalidRequest(
            "one of stdin, stdout or stderr must be set", hint="ask for at least one stream"
        )
    if request.tty and request.stderr:
        raise InvalidRequest(
            "tty and stderr cannot both be set", hint="a terminal has one output: leave stderr unset"
        )


class Spawn(Protocol):
    """Starts an exec's command (stage0/cri/exec.py's Process; tests give a host process)."""

    def __call__(
        self, container: Container, cmd: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> remotecommand.Running: ...


def _spawn_in_app(
    container: Container, cmd: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool
) -> remotecommand.Running:
    from stage0.cri.exec import Process  # stage1's enter path: loaded once a client connects

    return Process(container.pod_dir, container.app, cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)


class StreamingServer:
    def __init__(self, host: str, port: int, backend: Backend, *, spawn: Spawn = _spawn_in_app) -> None:
        self.host, self.port, self.backend = host, port, backend
        self.spawn = spawn
        self.tokens = Tokens()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listens (port 0: any free port; ``self.port`` tells which) and serves in a thread."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler)
        self._httpd.streaming = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cri-streaming", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def _url(self, kind: str, request: Request) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/{kind}/{self.tokens.put(request)}"

    def exec_url(self, req: _ExecCmd) -> str:
        """The URL of an Exec; raises Error (invalid argument) for a request no client can use."""
        _check(req)
        if not req.cmd:
            raise InvalidRequest("exec needs a command", hint="give the command and its arguments")
        request = ExecRequest(req.container_id, tuple(req.cmd), req.tty, req.stdin, req.stdout, req.stderr)
        return self._url("exec", request)

    def attach_url(self, req: _ExecLike) -> str:
        _check(req)
        return self._url(
            "attach", AttachRequest(req.container_id, req.tty, req.stdin, req.stdout, req.stderr)
        )

    def portforward_url(self, req: _PortForwardLike) -> str:
        return self._url("portforward", PortForwardRequest(req.pod_sandbox_id, tuple(req.port)))


class _ExecCmd(_ExecLike, Protocol):
    @property
    def cmd(self) -> list[str] | tuple[str, ...]: ...


class _PortForwardLike(Protocol):
    @property
    def pod_sandbox_id(self) -> str: ...

    @property
    def port(self) -> list[int] | tuple[int, ...]: ...


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    streaming: StreamingServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the service's log is the journal; a line per request would drown it

    def do_POST(self) -> None:
        self.close_connection = True
        kind, _, token = self.path.split("?")[0].strip("/").partition("/")
        request = (
            self.server.streaming.tokens.take(token) if kind in ("exec", "attach", "portforward") else None
        )
        if request is None:
            self._refuse(404, "unknown or expired streaming token (a token is good once, for a minute)")
            return
        if self.headers.get("Upgrade", "").lower() != "spdy/3.1":
            self._refuse(400, "this endpoint speaks SPDY/3.1 only (Upgrade: SPDY/3.1)")
            return
        offered = [
            p.strip() for h in self.headers.get_all("X-Stream-Protocol-Version") or [] for p in h.split(",")
        ]
        wanted = portforward.PROTOCOL if kind == "portforward" else remotecommand.PROTOCOL
        if wanted not in offered:
            self._refuse(403, f"no common stream protocol: offered {offered}, this server speaks {wanted}")
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "SPDY/3.1")
        self.send_header("X-Stream-Protocol-Version", wanted)
        self.end_headers()
        self.wfile.flush()
        self.connection.settimeout(None)
        _serve(self.server.streaming, self.connection, request)

    do_GET = do_POST

    def _refuse(self, code: int, message: str) -> None:
        body = (message + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(streaming: StreamingServer, sock: socket.socket, request: Request) -> None:
    """One upgraded connection, to its end."""
    backend = streaming.backend
    if isinstance(request, PortForwardRequest):
        try:
            netns = backend.sandbox_netns(request.sandbox_id)
        except Error:
            netns = "/nonexistent"  # every connection's error stream says so
        forward = portforward.PortForward(lambda port: portforward.connect(netns, port))
        Session(sock, forward.add).serve()
        return
    channels = remotecommand.Channels(
        stdin=request.stdin, stdout=request.stdout, stderr=request.stderr, tty=request.tty
    )
    session = Session(sock, channels.add)
    reader = threading.Thread(target=session.serve, daemon=True)
    reader.start()
    try:
        if channels.wait():
            _run(streaming, channels, request, gone=lambda: not reader.is_alive())
        reader.join(5.0)  # the client closes once it has read every stream to its end
    finally:
        session.close()
        reader.join()


def _run(
    streaming: StreamingServer,
    channels: remotecommand.Channels,
    request: ExecRequest | AttachRequest,
    gone: Callable[[], bool],
) -> None:
    backend = streaming.backend
    try:
        container = backend.container(request.container_id)
        if isinstance(request, AttachRequest):
            resize: Stream | None = channels.get("resize")
            io = AttachIO(
                channels.get("stdin"),
                channels.get("stdout"),
                channels.get("stderr"),
                request.tty,
                remotecommand.sizes(resize),
                gone,
            )
            backend.attach(request.container_id, io)
            channels.finish(remotecommand.status(0))
            return
        process = streaming.spawn(
            container,
            list(request.cmd),
            tty=request.tty,
            stdin=channels.get("stdin") is not None,
            stdout=request.stdout,
            stderr=request.stderr and not request.tty,
        )
    except Error as error:
        channels.finish(remotecommand.status(None, str(error)))
        return
    try:
        remotecommand.serve_process(channels, process)
    finally:
        process.close()
