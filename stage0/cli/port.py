"""``nspod port POD [PRIVATE[/PROTO]]``: a pod's published ports as podman prints them."""

from __future__ import annotations

import argparse

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    port = verbs.add_parser("port", help="list a pod's published ports (80/tcp -> 0.0.0.0:8080)")
    port.add_argument("pod", metavar="POD", help="the pod's UUID (any unique prefix) or name")
    port.add_argument("private", nargs="?", metavar="PRIVATE[/PROTO]", help="that port's host side alone")
    port.set_defaults(handler=run_port)


def run_port(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.ports import parse_private, port_lines
    from stage0.api.processes import spec_of
    from stage0.pods.dirs import Pods

    if args.private is not None:
        parse_private(args.private)  # a usage error before the pod is looked up
    pod = Pods(options.dir).find(args.pod)
    for line in port_lines(spec_of(pod).ports, args.private):
        print(line)
    return 0
