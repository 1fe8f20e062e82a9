"""``nspod list|status|stop|rm|gc|enter|cat-manifest|logs``: pods after they were made."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from stage0.cli.args import duration, uuid_args, uuids, wait_timeout
from stage0.cli.format import moment
from stage0.cli.output import add_format
from stage0.host.executor import call_stage1
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.pods.dirs import Pod, Pods


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    listing = verbs.add_parser("list", help="list pods")
    listing.add_argument("--full", action="store_true", help="whole UUIDs and image IDs, absolute times")
    listing.add_argument("--no-legend", action="store_true", help="leave out the header line")
    add_format(listing)
    listing.set_defaults(handler=run_list)

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
    logs.add_argument("-f", "--follow", action="store_true", help="go on printing new lines until Ctrl-C")
    logs.set_defaults(handler=run_logs)


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.cli.format import table
    from stage0.cli.output import dump, networks_text, pod_json
    from stage0.pods.dirs import Pods

    rows = []
    for pod in Pods(options.dir).all():
        try:  # everything read here, while the pod is still there
            rows.append((pod_json(pod), pod.created(), pod.started()))
        except FileNotFoundError:
            continue  # removed while we looked
    if args.format == "json":
        dump([row for row, _, _ in rows])
        return 0
    names = _image_names(options, {a["image"]["id"] for r, _, _ in rows for a in r["apps"]})
    cells = [
        [
            r["uuid"] if args.full else r["uuid"][:8],
            r["name"] or "-",
            r["unit"] or "-",
            ",".join(_app_cell(a) for a in r["apps"]) or "-",
            ",".join(names.get(a["image"]["id"]) or _image_cell(a["image"]) for a in r["apps"]) or "-",
            r["state"],
            moment(created, full=args.full),
            moment(started, full=args.full),
            networks_text(r["networks"]) or "-",
        ]
        for r, created, started in rows
    ]
    legend = (
        None
        if args.no_legend
        else ["UUID", "NAME", "UNIT", "APPS", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"]
    )
    sys.stdout.write(table(cells, legend))
    return 0


def _app_cell(app: dict[str, Any]) -> str:
    """``web`` while it runs, ``web=0`` once it has ended with that code, ``web=143(SIGTERM)``
    once a signal ended it."""
    if app["exit_code"] is None:
        return str(app["name"])
    return f"{app['name']}={app['exit_code']}" + (f"({app['signal']})" if app.get("signal") else "")


def _image_cell(image: dict[str, Any]) -> str:
    return f"{image['name']}:{image['version']}" if image["version"] else image["name"]


def _image_names(options: GlobalOptions, ids: set[str]) -> dict[str, str]:
    """Each stored image's name as ``image list`` shows it (an OCI image's REGISTRY/REPO:TAG), read
    without writing (list is a reader's verb); an image no longer stored keeps its manifest's."""
    import sqlite3

    from stage0.cli.format import display_name
    from stage0.images.store.index import Index, StoreError

    path = os.path.join(options.dir, "images", "index.db")
    if not ids or not os.access(path, os.R_OK):
        return {}
    try:
        index = Index(path, read_only=True)
    except StoreError:
        return {}
    try:
        return {i: display_name(row) for i in ids if (row := index.image(i)) is not None}
    except sqlite3.Error:  # a listing does without the store's names rather than fail
        return {}
    finally:
        index.close()


def _wait(options: GlobalOptions, uuid: str, until: str, timeout: float) -> Pod:
    from stage0.errors import Error
    from stage0.pods.dirs import Pods, PodState

    deadline = time.monotonic() + (timeout or float("inf"))
    pods = Pods(options.dir)
    while True:
        pod = pods.find(uuid)
        state = pod.state()
        if until == "exited" and not state.alive and state is not PodState.PREPARED:
            return pod
        if until == "ready" and state is PodState.RUNNING and _unit_state(pod)[0] == "active":
            return pod
        if until == "ready" and state in (PodState.EXITED, PodState.EXITED_GARBAGE):
            raise Error(
                f"pod {pod.uuid} exited before it was ready", hint=f"see 'nspod status {pod.uuid[:8]}'"
            )
        if time.monotonic() > deadline:
            raise Error(f"pod {pod.uuid} is still {state} after {timeout:g}s")
        time.sleep(0.1)


def _unit_state(pod: Pod) -> tuple[str, int]:
    """(ActiveState, MainPID) of the pod's host unit."""
    from stage0.host.executor import unit_state

    try:
        with open(pod.paths.unit) as file:
            unit = file.read().strip()
    except FileNotFoundError:
        return "", 0
    return unit_state(unit)


def run_status(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import PodNotFound

    try:
        return _status(options, args)
    except FileNotFoundError:  # gc or rm removed it while we read it
        raise PodNotFound(f"pod {uuids(args)[0]} was removed meanwhile") from None


def _profile(pod: Pod) -> Any:
    """Each app's confinement as stage1 applied it (written when the pod starts), else None."""
    try:
        with open(pod.paths.profile) as file:
            return json.load(file)
    except FileNotFoundError:
        return None


def _status(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods, PodState

    wait, wait_ready = wait_timeout(args, "wait"), wait_timeout(args, "wait_ready")
    uuid = uuids(args)[0]
    if wait is not None:
        pod = _wait(options, uuid, "exited", wait)
    elif wait_ready is not None:
        pod = _wait(options, uuid, "ready", wait_ready)
    else:
        pod = Pods(options.dir).find(uuid)
    state = pod.state()
    pid = _unit_state(pod)[1] if state is PodState.RUNNING else 0
    exited = state in (PodState.EXITED, PodState.EXITED_GARBAGE)
    if args.format == "json":
        from stage0.cli.output import dump, pod_json

        dump({**pod_json(pod), "pid": pid or None, "exited": exited, "profile": _profile(pod)})
        return 0
    from stage0.cli.output import key_values, networks_text, pod_networks, rfc3339

    info: dict[str, Any] = {
        "state": str(state),
        "created": rfc3339(pod.created()),
        "started": rfc3339(pod.started()),
    }
    if pid:
        info["pid"] = pid
    if state is PodState.RUNNING:
        info["unit"] = pod.unit() or "-"
    info["exited"] = exited
    if networks := networks_text(pod_networks(pod)):
        info["networks"] = networks
    signals = pod.app_signals()
    for app, code in pod.app_status().items():
        info[f"app-{app}"] = code
    for app, name in signals.items():  # not app-<app>-signal: that could be an app's own code line
        info[f"signal-{app}"] = name
    sys.stdout.write(key_values(info))
    return 0


def run_stop(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import Error
    from stage0.host.mounts import detach_below
    from stage0.pods.dirs import Pods, PodState

    failed = 0
    for uuid in uuids(args):
        pod = Pods(options.dir).find(uuid)
        state = pod.state()
        if state is not PodState.RUNNING:
            never = " (never started)" if state is PodState.EXITED and pod.started() is None else ""
            print(f"pod {pod.uuid} is {state}{never}; nothing to stop", file=sys.stderr)
            continue
        if call_stage1(options, "stop", pod.path, *(["--force"] if args.force else [])) != 0:
            failed += 1
        else:
            # what a killed 'app add' left mounted on the host (stage0/host/mounts.py)
            detach_below(pod.path)
            print(pod.uuid)
    if failed:
        raise Error(f"{failed} pod(s) could not be stopped")
    return 0


def remove_pod(options: GlobalOptions, pod: Pod) -> bool:
    """Clean up after ``pod`` and remove its directory; False when another nspod got there first."""
    from stage0.pods.dirs import Pods

    if not os.path.isdir(pod.path):
        return False
    # only a pod stage1 began to start has host state to clean up (a unit, its network), but a
    # start can be cut short anywhere (kill -9 of nspod run) once the unit's name is written
    if os.path.exists(pod.paths.started) or os.path.exists(pod.paths.unit):
        call_stage1(options, "gc", pod.path)
    Pods(options.dir).remove(pod)
    return True


def run_rm(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import Error
    from stage0.pods.dirs import Pods

    for uuid in uuids(args):
        pod = Pods(options.dir).find(uuid)
        if pod.state().alive:
            raise Error(f"pod {pod.uuid} is {pod.state()}", hint=f"stop it first: nspod stop {pod.uuid[:8]}")
        if not remove_pod(options, pod):
            raise Error(f"pod {pod.uuid} was removed meanwhile", hint="see 'nspod list'")
        print(pod.uuid)
    return 0


def run_gc(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import Pods

    pods = Pods(options.dir)
    with pods.gc_lock():  # a second gc waits for this one, then finds less to do
        return _gc(options, pods, args)


def _gc(options: GlobalOptions, pods: Pods, args: argparse.Namespace) -> int:
    from stage0.pods.dirs import DirState, PodNotFound, PodState
    from stage0.pool.spares import half_made

    now = time.time()
    for pod in pods.all():  # mark
        state = pod.state()
        try:
            if state is PodState.RUNNING and half_made(pod):  # a spare whose maker died
                call_stage1(options, "stop", pod.path)
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
        if due and remove_pod(options, pod):
            print(f"removed pod {pod.uuid}")
    pods.sweep_removing()
    # a network whose pod went without its teardown (stage1/orphans.py); a stage1 without the verb
    # has nothing to sweep
    call_stage1(options, "sweep", pods.root)
    return 0


def run_enter(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import Error
    from stage0.pods.dirs import Pods, PodState

    pod = Pods(options.dir).find(args.uuid)
    if pod.state() is not PodState.RUNNING:
        raise Error(f"pod {pod.uuid} is {pod.state()}", hint="only a running pod can be entered")
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    app = ["--app", args.app] if args.app else []
    return call_stage1(options, "enter", pod.path, *app, "--", *command)


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
    from stage0.errors import Error
    from stage0.pods.dirs import Pods

    pod = Pods(options.dir).find(uuids(args)[0])
    follow = ["--follow"] if args.follow else []
    app = []
    if args.app:
        with open(pod.paths.spec) as file:
            apps = [app["name"] for app in json.load(file)["apps"]]
        if args.app not in apps:
            raise Error(f"pod {pod.uuid} has no app {args.app}", hint=f"its apps: {', '.join(apps)}")
        app = [f"--app={args.app}"]
    return call_stage1(options, "logs", pod.path, *follow, *app)
