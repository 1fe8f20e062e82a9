"""``nspod cri``: the Container Runtime Interface (CRI v1) service kubelet talks to
(stage0/cri/server.py), run by ``nspod-cri.service`` with ``nspod-cri.socket``'s socket, or on a
socket of its own with ``--listen``."""

from __future__ import annotations

import argparse

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = verbs.add_parser(
        "cri", help="serve Kubernetes' Container Runtime Interface (CRI v1) on a unix socket"
    )
    parser.add_argument(
        "--listen",
        metavar="PATH",
        help="the socket to serve on, without systemd's (default: /run/nspod/cri.sock, or the "
        "socket nspod-cri.socket passes)",
    )
    parser.set_defaults(handler=run_cri)


def run_cri(options: GlobalOptions, args: argparse.Namespace) -> int:
    import logging

    from stage0.cri.server import serve

    # a service tells what it does (the journal keeps it): its own lines at INFO, where the CLI's
    # logging (stage0/log.py, set up before any verb) shows warnings only
    logging.getLogger("nspod").setLevel(logging.DEBUG if options.debug else logging.INFO)
    return serve(options, args.listen)
