"""The warm pool: booted, empty app sandboxes kept ready, and the keeper that runs pods in them.

``nspod pool keep`` (nspod-pool.service) keeps ``size`` spares booted (``[pool] size`` in
nspod.conf, or ``--size``) and listens on /run/nspod/pool.sock. ``nspod run`` hands it its
command line first (stage0/pool/client.py); the keeper, with every module loaded, parses it with
the real parser and takes it only when a spare can serve it as a cold start would (one image,
already in the store, the default network, no name, volumes, ports, DNS or terminal options:
:func:`cold_reason` says which). Then it claims a spare, plans the app with the planner every pod
goes through, mounts it in, relays its output to the caller's own stdout and stderr (passed
over the socket) and answers with its exit code. The claimed pod is a pod like any other from
then on: its app's end ends it, and it is never a spare again. A spare being made carries
``pool.filling`` (flocked by its maker); one ready carries ``pool.ready``, renamed to
``pool.taken`` by the one run that claims it (rename: exactly one wins). A spare whose maker
died half-way is stopped by the next keeper, ``nspod pool drain`` and ``nspod gc``; a keeper
stopped (SIGTERM) finishes the spare it is making first.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from stage0.errors import EXIT_CODES, Error, kind_of

if TYPE_CHECKING:
    from stage0.pool.run import Parse
from stage0.options import GlobalOptions
from stage0.pods.dirs import Pods
from stage0.pool.spares import Cold, make_spare, pool_size, spares, stop_half_made


class Keeper:
    def __init__(self, options: GlobalOptions, size: int, path: str, parse: Parse) -> None:
        self.options, self.size, self.path, self.parse = options, size, path, parse
        self.pods = Pods(options.dir)
        self.used = threading.Event()
        self.stopping = threading.Event()

    def fill(self) -> None:
        """Keep ``size`` spares; woken when a run takes one (and every few seconds). A spare a
        dead maker left half-made (an earlier keeper's) is stopped first: it counts as none."""
        while not self.stopping.is_set():
            self.used.clear()
            try:
                stop_half_made(self.options, self.pods)
            except Error as error:
                print(f"nspod pool: {error.message}", file=sys.stderr)
            while len(spares(self.pods)) < self.size and not self.stopping.is_set():
                try:
                    make_spare(self.options)
                except Error as error:
                    print(f"nspod pool: {error.message}", file=sys.stderr)
                    break
            self.used.wait(5.0)

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)  # root's alone: a request runs pods as root
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        filler = threading.Thread(target=self.fill, daemon=True)
        signal.signal(signal.SIGTERM, lambda signum, frame: self.stopping.set())
        filler.start()
        listener.settimeout(0.2)  # the loop looks at ``stopping`` this often
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
        # SIGTERM (systemctl stop): the spare being made is finished (ready: pool list, drain and
        # the next keeper see it), never left booting half-made; systemd's stop timeout bounds it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second one ends the keeper at once
        listener.close()
        self.used.set()
        filler.join()

    def handle(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            try:
                message, fds = _receive(conn)
                request = json.loads(message)
                code = self.run(request["argv"], fds, conn)
                conn.send(json.dumps({"exit": code}).encode())
            except Cold as why:
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"cold": str(why)}).encode())
            except Error as error:
                with contextlib.suppress(OSError):
                    os.write(fds[2], f"nspod: {error.diagnostics()}\n".encode())
                    conn.send(json.dumps({"exit": int(EXIT_CODES[kind_of(error)])}).encode())
            except (OSError, ValueError, KeyError, IndexError):
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"cold": "bad request"}).encode())
            finally:
                for fd in fds:
                    os.close(fd)

    def run(self, argv: list[str], fds: list[int], conn: socket.socket) -> int:
        from stage0.pool.run import run_pooled

        if len(fds) != 3:
            raise Cold("no stdio")
        command = self.parse(argv)
        if command is None:
            raise Cold("usage")  # the command line says so itself, cold
        if command.args.verb == "app":
            from stage0.pool.app_start import serve_app_start

            return serve_app_start(self.options, command, fds[2], conn)
        code = run_pooled(self, command, fds, conn)
        self.used.set()
        return code


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    import array

    fds = array.array("i")
    message, ancillary, _, _ = conn.recvmsg(1 << 16, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def keep(options: GlobalOptions, size: int | None, path: str, parse: Parse) -> Any:
    """``nspod pool keep``: runs until stopped; ``parse`` reads a run's command line."""
    Keeper(options, pool_size(options) if size is None else size, path, parse).serve()
