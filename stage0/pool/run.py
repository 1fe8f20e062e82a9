"""One ``nspod run`` served by the pool keeper (stage0/pool/keeper.py): parsed as the command line would
be, planned as a cold start would plan it, run in a claimed spare with its output relayed to
the caller's own stdout and stderr."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import argparse

    from stage0.options import GlobalOptions
    from stage0.pods.dirs import Pods
    from stage0.pods.requests import PodRequest


@dataclass(frozen=True, slots=True)
class Command:
    """A ``run`` command line as the front end that started the keeper parsed it (the CLI's own
    parser, handed in: the pool does not import the CLI)."""

    args: argparse.Namespace  # what cold_reason reads
    options: GlobalOptions
    request: Callable[[], PodRequest]  # called once the run is known to be pooled: it may read files


class Keeping(Protocol):
    """What a pooled run needs of the keeper that serves it (stage0/pool/keeper.py)."""

    options: GlobalOptions
    pods: Pods
    parse: Parse


# argv → the parsed command, or None when the command line is wrong (the cold path says why)
Parse = Callable[[list[str]], Command | None]


def run_pooled(keeper: Keeping, command: Command, fds: list[int], conn: socket.socket) -> int:
    from stage0 import context
    from stage0.api.pods import relaxing
    from stage0.errors import Error
    from stage0.host.stage1client import Stage1Client
    from stage0.images.fetch.policy import PullPolicy
    from stage0.images.store.store import ImageNotFound
    from stage0.pods.sandbox import plan_app, sandbox_spec, written
    from stage0.pool.spares import Cold, claim, cold_reason

    args, options = command.args, command.options
    if reason := cold_reason(args, options, keeper.options):
        raise Cold(reason)
    request = relaxing(options, command.request())
    apps = request.apps
    if len(apps) != 1:
        raise Cold("one image per pooled pod")
    pod = claim(keeper.pods)
    if pod is None:
        raise Cold("no spare ready")
    try:
        spec = sandbox_spec(pod)
        with context.open_store(options) as store:
            fetcher = context.fetcher(options, store, PullPolicy.NEVER)  # a pooled run fetches nothing
            try:
                name, files = plan_app(pod, spec, apps[0], fetcher, base=request)
            except ImageNotFound:
                raise Cold("image not in the store") from None
            except Error as error:  # a path relative to the caller, a bad flag value…: cold says it right
                raise Cold(error.message) from None
    except BaseException:
        _release(pod.path)  # unused: a spare again
        raise
    stage1 = Stage1Client.recorded(pod.path)  # a spare is the nspawn flavor's: the client says so
    with written(files):
        stage1.join_app(name, attached=not args.detach)
    if args.detach:
        stage1.start_app(name, None)
        os.write(fds[1], f"{pod.uuid}\n".encode())
        return 0
    out, err = (os.fdopen(os.dup(fd), "wb", buffering=0) for fd in fds[1:])
    fields = {"POD_UUID": pod.uuid, "POD_NAME": f"nspod-{pod.uuid}"}
    relayed = stage1.relay(name, fields, out, err)
    stopping = threading.Event()
    threading.Thread(target=_listen, args=(conn, stopping), daemon=True).start()
    conn.send(json.dumps({"started": True}).encode())
    try:
        return stage1.start_app(name, stopping)
    finally:
        relayed.finish()
        out.close()
        err.close()


def _release(pod_dir: str) -> None:
    from stage0.pool.spares import READY, TAKEN

    with contextlib.suppress(OSError):
        os.rename(os.path.join(pod_dir, TAKEN), os.path.join(pod_dir, READY))


def _listen(conn: socket.socket, stopping: threading.Event) -> None:
    """The caller's signals (Ctrl-C): the pod is shut down in order; a caller gone stops it too."""
    try:
        while True:
            data = conn.recv(1024)
            if not data or "signal" in json.loads(data):
                break
    except (OSError, ValueError):
        pass
    stopping.set()
