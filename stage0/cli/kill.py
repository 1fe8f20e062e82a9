"""``nspod kill [-s SIGNAL] POD [--app NAME]``: a signal to an app's processes (every app's, without
``--app``), as ``podman kill`` sends one to a container's."""

from __future__ import annotations

import argparse

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kill = verbs.add_parser("kill", help="send a signal to a running pod's apps (default: SIGKILL)")
    kill.add_argument(
        "-s", "--signal", default="KILL", metavar="SIGNAL", help="a name (TERM, SIGHUP) or number (15)"
    )
    kill.add_argument("--app", help="that app alone (default: every app of the pod)")
    kill.add_argument("pod", metavar="POD", help="the pod's UUID (any unique prefix) or name")
    kill.set_defaults(handler=run_kill)


def run_kill(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.signals import kill, parse_signal
    from stage0.pods.dirs import Pods

    signum = parse_signal(args.signal)  # before anything is looked up: a usage error changes nothing
    pod = Pods(options.dir).find(args.pod)
    kill(pod, args.app, signum)
    print(pod.uuid)
    return 0
