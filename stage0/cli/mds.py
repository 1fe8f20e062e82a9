"""``nspod metadata-service``: the appc metadata service (stage0/pods/mds.py), run by
``nspod-metadata.service`` with the sockets of ``nspod-metadata.socket`` (the pods' HTTP side,
port 18112) and ``nspod-metadata-register.socket`` (stage1's, ``/run/nspod/metadata.sock``), or
on sockets of its own when started by hand."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket

from stage0.options import GlobalOptions
from stage1.abi import MDS_PORT, MDS_SOCKET

LISTEN_FDS_START = 3


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser("metadata-service", help="serve the pods' metadata and identity (appc)")
    parser.add_argument(
        "--listen-port",
        type=int,
        default=MDS_PORT,
        metavar="PORT",
        help="the pods' side, without systemd's sockets",
    )
    parser.add_argument(
        "--socket", default=MDS_SOCKET, metavar="PATH", help="the registration socket, without systemd's"
    )
    parser.set_defaults(handler=run_metadata_service)


def inherited() -> dict[str, socket.socket]:
    """The sockets systemd passed, by FileDescriptorName= (``public``, ``registration``)."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return {}
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    count = int(os.environ.get("LISTEN_FDS", "0") or 0)
    return {
        names[i] if i < len(names) else str(i): socket.socket(fileno=LISTEN_FDS_START + i)
        for i in range(count)
    }


def own_sockets(port: int, path: str) -> dict[str, socket.socket]:
    public = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, reuse_port=False)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    registration = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # root's alone
    try:
        registration.bind(path)
    finally:
        os.umask(old)
    registration.listen(64)
    return {"public": public, "registration": registration}


def run_metadata_service(options: GlobalOptions, args: argparse.Namespace) -> int:
    import asyncio

    from aiohttp import web

    from stage0.errors import FailedPreconditionError
    from stage0.host.machined import machine_roots, watch_removed
    from stage0.pods.mds import Service, restore

    sockets = inherited() or own_sockets(args.listen_port, args.socket)
    if set(sockets) != {"public", "registration"}:
        raise FailedPreconditionError(
            f"the metadata service needs two sockets, got {sorted(sockets)}",
            hint="start nspod-metadata.socket and nspod-metadata-register.socket",
        )
    service = Service()

    async def serve() -> None:
        # the running pods a restart would forget, before the first request (it waits in the
        # socket); watched first, so that one ending meanwhile is dropped again
        bus = await watch_removed(service.registry.drop_machine)
        restore(service.registry, await machine_roots(bus))
        runners = []
        for name, app in (("public", service.public()), ("registration", service.registration())):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sockets[name]).start()
            runners.append(runner)
        try:
            await asyncio.Event().wait()  # until SIGTERM
        finally:
            bus.disconnect()
            for runner in runners:
                await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
