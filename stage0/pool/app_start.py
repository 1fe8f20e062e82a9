"""``nspod app start`` served by the pool keeper (stage0/pool/keeper.py): the app of a running
sandbox started by a process that has stage1 loaded already, so the command's own interpreter
start-up and the CLI's imports are not in the start's path (the thin client is
stage0/pool/client.py, as for a pooled ``run``). Anything else of ``app`` goes cold."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from stage0.pool.spares import Cold, same_host

if TYPE_CHECKING:
    from stage0.options import GlobalOptions
    from stage0.pool.run import Command


def serve_app_start(keeper: GlobalOptions, command: Command, err_fd: int, conn: socket.socket) -> int:
    """The app's start, as ``nspod app start POD --app NAME`` does it; the exit code the command
    would give. A pod or app that is not there is said on the caller's stderr (``err_fd``)."""
    from stage0.api.pods import find
    from stage0.host.stage1client import Stage1Client
    from stage0.pods.sandbox import sandbox_spec

    args, options = command.args, command.options
    if args.app_verb != "start":
        raise Cold("not an app start")
    if options.debug or not same_host(options, keeper):
        raise Cold("another store, configuration or stage1")
    pod = find(options, args.pod)
    sandbox_spec(pod).app(args.app)  # a clear error for a name the pod does not have
    # from here on the start is ours: a keeper gone now must not make the caller start it again
    conn.send(json.dumps({"started": True}).encode())
    return Stage1Client.recorded(pod.path).start_in_place(args.app, err_fd)
