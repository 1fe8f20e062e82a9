"""``nspod cri``: the CRI v1 gRPC server (RuntimeService and ImageService) on a unix socket.

Started by ``nspod-cri.socket`` (socket activation) or on a socket of its own (``--listen``).
grpcio cannot serve on an inherited descriptor, so an activated server listens on a private
socket in a root-only directory and relays each connection the activated socket accepts to it:
the socket unit keeps its path and its queue across restarts, and kubelet never sees a gap.
READY=1 goes to systemd only after the CRI state has been read back from disk (state.py), so a
restarted service answers with every sandbox and container it had.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import selectors
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from stage0.cri.proto import api_pb2, api_pb2_grpc
from stage0.errors import UnavailableError
from stage0.host.executor import THREADED
from stage0.host.notify import notify
from stage0.options import GlobalOptions

log = logging.getLogger("nspod.cri")

DEFAULT_SOCKET = "/run/nspod/cri.sock"
PRIVATE_DIR = "/run/nspod/cri"  # root's alone (0700): the relayed server's own socket
LISTEN_FDS_START = 3
WORKERS = 32  # kubelet and critest run many calls at once; most wait on systemd
MESSAGE_MAX = 16 * 1024 * 1024  # ExecSync output, ListContainers of a busy node
GRACE = 5.0  # seconds running calls get at a stop


def activated() -> socket.socket | None:
    """The listening socket systemd passed (``nspod-cri.socket``), if any."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0") or 0) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for the stage1s and tools we start
    sock = socket.socket(fileno=LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    return sock


def build(options: GlobalOptions) -> tuple[grpc.Server, Any]:
    """The gRPC server with both services (its state read back from disk), not yet listening."""
    from stage0.cri.runtime import RuntimeService

    runtime = RuntimeService(options)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cri"),
        options=[
            ("grpc.max_receive_message_length", MESSAGE_MAX),
            ("grpc.max_send_message_length", MESSAGE_MAX),
        ],
    )
    add_runtime: Callable[[Any, grpc.Server], None] = api_pb2_grpc.add_RuntimeServiceServicer_to_server
    add_images: Callable[[Any, grpc.Server], None] = api_pb2_grpc.add_ImageServiceServicer_to_server
    add_runtime(runtime, server)
    add_images(image_service(options), server)
    return server, runtime


def image_service(options: GlobalOptions) -> api_pb2_grpc.ImageServiceServicer:
    """criimg's ImageService (stage0/cri/images.py); until it is there every call is UNIMPLEMENTED."""
    try:
        module = importlib.import_module("stage0.cri.images")
    except ModuleNotFoundError:
        base = unimplemented(api_pb2_grpc.ImageServiceServicer, "the image service")
        # crictl checks the image API with ImageFsInfo before any call, even a runtime one
        fs_info = lambda self, request, context: api_pb2.ImageFsInfoResponse()  # noqa: E731
        placeholder: api_pb2_grpc.ImageServiceServicer = type("Images", (base,), {"ImageFsInfo": fs_info})()
        return placeholder
    service: api_pb2_grpc.ImageServiceServicer = module.ImageService(options)
    return service


def unimplemented(base: type[Any], what: str) -> type[Any]:
    """``base`` with every RPC answering UNIMPLEMENTED with a clear message (grpc's own stubs
    raise, which grpcio logs with a traceback)."""

    def method(name: str) -> Callable[[Any, Any, grpc.ServicerContext], Any]:
        def call(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name}: {what} is not in this nspod yet")

        return call

    names = [n for n in vars(base) if n[:1].isupper()]
    return type(f"Unimplemented{base.__name__}", (base,), {n: method(n) for n in names})


def bind(server: grpc.Server, path: str) -> None:
    """Listen on ``path`` (root's alone: mode 0600), replacing a stale socket file."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)
    try:
        port = server.add_insecure_port(f"unix://{os.path.abspath(path)}")
    except RuntimeError:
        port = 0
    finally:
        os.umask(old)
    if not port:
        raise UnavailableError(f"cannot listen on {path}", hint="is another 'nspod cri' serving there?")


def serve(options: GlobalOptions, listen: str | None) -> int:
    """Serve until SIGTERM or SIGINT."""
    THREADED.set()  # stage1's verbs that fork run as programs of their own (stage0/host/executor.py)
    inherited = None if listen else activated()
    server, runtime = build(options)
    if inherited is None:
        path = listen or DEFAULT_SOCKET
        bind(server, path)
    else:
        os.makedirs(PRIVATE_DIR, mode=0o700, exist_ok=True)
        os.chmod(PRIVATE_DIR, 0o700)
        path = os.path.join(PRIVATE_DIR, "grpc.sock")
        bind(server, path)
    server.start()
    stop = threading.Event()
    if inherited is not None:
        threading.Thread(target=relay, args=(inherited, path, stop), name="cri-relay", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    runtime.started()
    notify(f"READY=1\nSTATUS=serving CRI v1 on {listen or DEFAULT_SOCKET}")
    log.info("serving CRI v1 on %s", listen or DEFAULT_SOCKET)
    stop.wait()
    notify("STOPPING=1")
    server.stop(GRACE).wait()
    runtime.stopped()
    if inherited is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return 0


def relay(listener: socket.socket, target: str, stop: threading.Event) -> None:
    """Accept on the activated socket; pipe each connection to the gRPC server's own."""
    while not stop.is_set():
        try:
            client, _ = listener.accept()
        except OSError as error:
            log.warning("accept on the CRI socket failed: %s", error)
            stop.wait(0.1)
            continue
        threading.Thread(target=pipe, args=(client, target), name="cri-pipe", daemon=True).start()


def pipe(client: socket.socket, target: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        upstream.close()
        return
    peers = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as selector, client, upstream:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        open_ = 2
        while open_:
            for key, _ in selector.select():
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = source.recv(65536)
                    if data:
                        peers[source].sendall(data)
                        continue
                except OSError:
                    return
                # one side finished writing: pass the half-close on, keep reading the other
                selector.unregister(source)
                with contextlib.suppress(OSError):
                    peers[source].shutdown(socket.SHUT_WR)
                open_ -= 1
