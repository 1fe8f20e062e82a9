"""``nspod status|stop|rm|gc|enter|cat-manifest|logs``: pods after they were made."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from stage0.cli.args import duration, uuid_args, uuids, wait_timeout
from stage0.cli.output import add_format
from stage0.host.stage1client import Stage1Client
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.api.views import PodView
    from stage0.pods.dirs import Pods
    from stage0.pods.health import HealthView


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    status = verbs.add_parser("status", help="show a pod's state and its apps' exit codes")
    uuid_args(status, many=False)
    status.add_argument(
        "--wait",
        nargs="?",
        const="0s",
        metavar="TIMEOUT",
        help="wait until the pod has exited (at most TIMEOUT, e.g. 30s; default: no limit)",
    )
    status.add_argument(
        "--wait-ready",
        nargs="?",
        const="0s",
        metavar="TIMEOUT",
        help="wait until the pod is running and ready (at most TIMEOUT)",
    )
    add_format(status)
    status.set_defaults(handler=run_status)

    stop = verbs.add_parser("stop", help="stop running pods (an orderly shutdown; --force kills)")
    uuid_args(stop, many=True)
    stop.add_argument("--force", action="store_true", help="kill the pod (SIGKILL) instead of a shutdown")
    stop.set_defaults(handler=run_stop)

    rm = verbs.add_parser("rm", help="remove pods that are not running")
    uuid_args(rm, many=True)
    rm.set_defaults(handler=run_rm)

    gc = verbs.add_parser("gc", help="remove exited pods after a grace period")
    gc.add_argument(
        "--grace-period",
        type=duration,
        default=duration("30m"),
        metavar="DURATION",
        help="keep exited pods this long after they were marked (default: 30m)",
    )
    gc.add_argument(
        "--expire-prepared",
        type=duration,
        default=duration("24h"),
        metavar="DURATION",
        help="remove prepared pods never run after this long (default: 24h)",
    )
    gc.add_argument("--mark-only", action="store_true", help="only mark exited pods as garbage")
    gc.set_defaults(handler=run_gc)

    enter = verbs.add_parser("enter", help="run a command in a running pod's app")
    enter.add_argument("--app", help="the app (needed when the pod has several)")
    enter.add_argument("uuid", metavar="UUID")
    enter.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    enter.set_defaults(handler=run_enter)

    cat = verbs.add_parser("cat-manifest", help="print a pod's manifest")
    uuid_args(cat, many=False)
    cat.add_argument("--pretty-print", action="store_true", help="indent the JSON")
    cat.set_defaults(handler=run_cat_manifest)

    logs = verbs.add_parser("logs", help="print a pod's output (from the journal)")
    uuid_args(logs, many=False)
    logs.add_argument("--app", help="one app's lines alone")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="go on printing new lines until the pod ends (or Ctrl-C)"
    )
    logs.add_argument("--tail", type=_count, metavar="N", help="the last N lines (then new ones with -f)")
    logs.add_argument(
        "--since", metavar="TIME", help="lines from TIME: RFC 3339, unix seconds, or 10m/2h ago"
    )
    logs.add_argument("--until", metavar="TIME", help="lines up to TIME (as --since)")
    logs.add_argument("-t", "--timestamps", action="store_true", help="each line after its time (RFC 3339)")
    logs.set_defaults(handler=run_logs)


def health_of(view: PodView) -> dict[str, HealthView]:
    """A running pod's checked apps' health (stage0/pods/health.py); none once it ended."""
    from stage0.pods.dirs import PodState
    from stage0.pods.health import pod_health
    from stage1.abi import PodPaths

    paths = PodPaths(view.path)
    return pod_health(paths.spec, paths.status) if view.state is PodState.RUNNING else {}


def run_status(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import PodNotFound

    try:
        return _status(options, args)
    except FileNotFoundError:  # gc or rm removed it while we read it
        raise PodNotFound(f"pod {uuids(args)[0]} was removed meanwhile") from None


def _status(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import pod_status, profile, wait_pod
    from stage0.pods.dirs import PodState

    wait, wait_ready = wait_timeout(args, "wait"), wait_timeout(args, "wait_ready")
    uuid = uuids(args)[0]
    if wait is not None:
        uuid = wait_pod(options, uuid, "exited", wait).uuid
    elif wait_ready is not None:
        uuid = wait_pod(options, uuid, "ready", wait_ready).uuid
    view = pod_status(options, uuid)
    if args.format == "json":
        from stage0.cli.output import dump, pod_json

        checks = {name: h.as_json() for name, h in health_of(view).items()}
        dump(
            {
                **pod_json(view),
                "pid": view.pid,
                "exited": view.exited,
                "profile": profile(view),
                "health": checks,
            }
        )
        return 0
    from stage0.cli.output import key_values, networks_text, rfc3339

    info: dict[str, Any] = {
        "state": str(view.state),
        "created": rfc3339(view.created),
        "started": rfc3339(view.started),
    }
    if view.pid:
        info["pid"] = view.pid
    if view.state is PodState.RUNNING:
        info["unit"] = view.unit or "-"
    info["exited"] = view.exited
    info["stage1"] = _stage1_of(options, view.uuid)
    if networks := networks_text(view.networks):
        info["networks"] = networks
    ended = sorted((app for app in view.apps if app.exit_code is not None), key=lambda app: app.name)
    for app in ended:
        info[f"app-{app.name}"] = app.exit_code
    for app in ended:  # not app-<app>-signal: that could be an app's own code line
        if app.signal:
            info[f"signal-{app.name}"] = app.signal
    for name, health in health_of(view).items():
        info[f"health-{name}"] = health.status
    sys.stdout.write(key_values(info))
    return 0


def _stage1_of(options: GlobalOptions, uuid: str) -> str:
    """The stage1 that prepared the pod (stage0/pods/flavor.py): nspawn, fly, or a stage1's path."""
    from stage0.api.pods import find
    from stage0.pods.flavor import name, recorded

    return name(recorded(find(options, uuid).path) or "")


def run_stop(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import stop
    from stage0.errors import UnavailableError
    from stage0.pods.dirs import Pods, PodState

    failed = 0
    for uuid in uuids(args):
        pod = Pods(options.dir).find(uuid)
        state = pod.state()
        if state is not PodState.RUNNING:
            never = " (never started)" if state is PodState.EXITED and pod.started() is None else ""
            print(f"pod {pod.uuid} is {state}{never}; nothing to stop", file=sys.stderr)
            continue
        if not stop(options, pod, force=args.force):
            failed += 1
        else:
            print(pod.uuid)
    if failed:
        raise UnavailableError(f"{failed} pod(s) could not be stopped")
    return 0


def run_rm(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import remove

    for uuid in uuids(args):
        print(remove(options, uuid))
    return 0


def run_gc(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods

    pods = Pods(options.dir)
    with pods.gc_lock():  # a second gc waits for this one, then finds less to do
        return _gc(options, pods, args)


def _gc(options: GlobalOptions, pods: Pods, args: argparse.Namespace) -> int:
    from stage0.api.pods import remove_dir
    from stage0.pods.dirs import DirState, PodNotFound, PodState
    from stage0.pool.spares import half_made

    now = time.time()
    for pod in pods.all():  # mark
        state = pod.state()
        try:
            if state is PodState.RUNNING and half_made(pod):  # a spare whose maker died
                Stage1Client.of(options, pod.path).stop()
                state = pod.state()
            if state is PodState.EXITED:
                pods.move(pod, DirState.EXITED_GARBAGE)  # the rename's ctime is the mark time
            elif state is PodState.ABORTED_PREPARE or (
                state is PodState.PREPARED and now - pod.created() > args.expire_prepared
            ):
                pods.move(pod, DirState.GARBAGE)
        except (PodNotFound, FileNotFoundError):
            continue  # an rm, a run-prepared or a start moved it meanwhile: not ours any more
    if args.mark_only:
        return 0
    now = time.time()  # after marking: a grace period of 0s sweeps what was just marked
    for pod in pods.all():  # sweep
        try:
            due = pod.where is DirState.GARBAGE or (
                pod.where is DirState.EXITED_GARBAGE
                and now - os.stat(pod.path).st_ctime >= args.grace_period
            )
        except FileNotFoundError:
            continue
        if due and remove_dir(options, pod):
            print(f"removed pod {pod.uuid}")
    pods.sweep_removing()
    # a network whose pod went without its teardown (stage1/orphans.py); a stage1 without the verb
    # has nothing to sweep
    Stage1Client.of(options, pods.root).sweep()
    return 0


def run_enter(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import FailedPreconditionError
    from stage0.pods.dirs import Pods, PodState

    pod = Pods(options.dir).find(args.uuid)
    if pod.state() is not PodState.RUNNING:
        raise FailedPreconditionError(
            f"pod {pod.uuid} is {pod.state()}", hint="only a running pod can be entered"
        )
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return Stage1Client.of(options, pod.path).enter(args.app, command)


def run_cat_manifest(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods

    pod = Pods(options.dir).find(uuids(args)[0])
    with open(pod.paths.manifest) as file:
        text = file.read()
    if args.pretty_print:
        text = json.dumps(json.loads(text), indent=2) + "\n"
    sys.stdout.write(text)
    return 0


def run_logs(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import NotFoundError
    from stage0.pods.dirs import Pods

    window = _window(args)  # bad times are said before anything is looked up
    pod = Pods(options.dir).find(uuids(args)[0])
    if args.app:
        with open(pod.paths.spec) as file:
            apps = [app["name"] for app in json.load(file)["apps"]]
        if args.app not in apps:
            raise NotFoundError(f"pod {pod.uuid} has no app {args.app}", hint=f"its apps: {', '.join(apps)}")
    return Stage1Client.of(options, pod.path).logs(follow=args.follow, app=args.app, window=window)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"bad line count {text!r} (a number, 0 or more)")
    return int(text)


def _window(args: argparse.Namespace) -> list[str]:
    """``logs``'s --tail, --since, --until and --timestamps as stage1 reads them (times in seconds)."""
    from stage0.cli.events import point_in_time

    now = time.time()
    window = [f"--tail={args.tail}"] if args.tail is not None else []
    for flag in ("since", "until"):
        if (text := getattr(args, flag)) is not None:
            window.append(f"--{flag}={point_in_time(text, now):.6f}")
    return window + (["--timestamps"] if args.timestamps else [])
