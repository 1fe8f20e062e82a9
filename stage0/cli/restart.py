"""``nspod restart POD…``: each pod stopped and started again (podman's restart; see
stage0/api/restart.py for which pods can be)."""

from __future__ import annotations

import argparse

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    restart = verbs.add_parser("restart", help="stop pods and start them again (pod@NAME.service pods)")
    restart.add_argument("pods", nargs="+", metavar="POD", help="a pod's UUID (any unique prefix) or name")
    restart.set_defaults(handler=run_restart)


def run_restart(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.restart import restart

    for pod in args.pods:
        print(restart(options, pod), flush=True)
    return 0
