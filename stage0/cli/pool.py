"""``nspod pool keep|list|drain``: the warm pool of spare pods (stage0/pool/keeper.py)."""

from __future__ import annotations

import argparse
import os

from stage0.options import GlobalOptions
from stage0.pool.client import SOCKET


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pool = verbs.add_parser("pool", help="the warm pool: booted spare pods that 'nspod run' starts in")
    actions = pool.add_subparsers(dest="pool_verb", metavar="ACTION", required=True)
    keep = actions.add_parser("keep", help="keep the spares booted and serve runs (nspod-pool.service)")
    keep.add_argument("--size", type=int, help="spares to keep (default: [pool] size of nspod.conf)")
    keep.add_argument("--socket", default=SOCKET, help="where runs reach the keeper (default: %(default)s)")
    keep.set_defaults(handler=run_keep)
    listing = actions.add_parser("list", help="the spares ready now, one UUID a line")
    listing.set_defaults(handler=run_list)
    drain = actions.add_parser("drain", help="stop every spare that is ready (none is left half-made)")
    drain.set_defaults(handler=run_drain)


def run_keep(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.cli.run import pooled_command
    from stage0.errors import UsageError
    from stage0.pool.keeper import keep

    if args.size is not None and args.size < 0:
        raise UsageError("--size must be 0 or more")
    keep(options, args.size, os.path.abspath(args.socket), pooled_command)
    return 0


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods
    from stage0.pool.spares import spares

    for pod in spares(Pods(options.dir)):
        print(pod.uuid)
    return 0


def run_drain(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods
    from stage0.pool.spares import drain

    for uuid in drain(options, Pods(options.dir)):
        print(uuid)
    return 0
