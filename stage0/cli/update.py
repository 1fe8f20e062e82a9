"""``nspod update [--app NAME] --memory=SIZE --cpu=CPUS POD``: a running app's memory and CPU
limits, changed live (stage1's ``update``: systemd's SetUnitProperties inside the pod), written in
the flags' own syntax and checked as the isolators they stand for."""

from __future__ import annotations

import argparse

from stage0.cli.args import uuid_args, uuids
from stage0.host.stage1client import Stage1Client
from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = verbs.add_parser("update", help="change a running app's memory and CPU limits")
    update.add_argument("--app", help="the app (needed when the pod has several)")
    update.add_argument("--memory", metavar="SIZE", help="memory limit, e.g. 512M (as run's --memory)")
    update.add_argument("--cpu", metavar="CPUS", help="CPU limit, e.g. 500m for half a CPU (as run's --cpu)")
    uuid_args(update, many=False)
    update.set_defaults(handler=run_update)


def run_update(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import FailedPreconditionError, UsageError
    from stage0.pods.dirs import Pods, PodState
    from stage0.pods.planner import isolator_limits
    from stage0.pods.requests import parse_isolator_flag

    flags = [(f"--{what}", text) for what, text in (("memory", args.memory), ("cpu", args.cpu)) if text]
    if not flags:
        raise UsageError("nothing to update", hint="give --memory, --cpu or both")
    limits = isolator_limits(tuple(parse_isolator_flag(flag, text) for flag, text in flags))
    pod = Pods(options.dir).find(uuids(args)[0])
    if pod.state() is not PodState.RUNNING:
        raise FailedPreconditionError(
            f"pod {pod.uuid} is {pod.state()}", hint="only a running pod can be updated"
        )
    values = [f"--memory={limits['memory_max']}"] if "memory_max" in limits else []
    values += [f"--cpu={limits['cpu_quota']}"] if "cpu_quota" in limits else []
    return Stage1Client.of(options, pod.path).update(args.app, *values)
