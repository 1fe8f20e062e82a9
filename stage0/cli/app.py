"""``nspod app …``: app sandboxes, rkt's ``app`` verbs (the primitives of Kubernetes' CRI).

    nspod app sandbox [POD FLAGS]                  boot an empty pod; prints its UUID
    nspod app add POD IMAGE [APP FLAGS] [-- ARGS]  plan the app and mount it into the pod
    nspod app start|stop|rm POD --app NAME
    nspod app list POD
    nspod app status POD --app NAME

A sandbox runs until it is stopped (``nspod stop``); its apps' exits are recorded, not acted on.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from stage0.cli.app_flags import APP_EPILOG
from stage0.cli.output import add_format, dump, key_values, rfc3339
from stage0.cli.run import _pod_arguments
from stage0.options import GlobalOptions, add_insecure_after_verb

if TYPE_CHECKING:
    from stage0.api.views import AppView


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    app = verbs.add_parser("app", help="app sandboxes: pods whose apps come and go while they run")
    actions = app.add_subparsers(dest="app_verb", metavar="ACTION", required=True)
    sandbox = actions.add_parser("sandbox", help="boot an empty pod (no apps yet); prints its UUID")
    _pod_arguments(sandbox, runtime=False)
    sandbox.set_defaults(handler=run_sandbox)
    add = actions.add_parser(
        "add",
        help="add an app to a running sandbox (fetched and planned as 'run' would); prints its name",
        epilog=APP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("pod", metavar="POD", help="the sandbox's UUID (or a unique prefix) or name")
    add.add_argument("--pull-policy", choices=["never", "new", "update"], default="new", help="as for 'run'")
    add_insecure_after_verb(add)
    add.add_argument("images", nargs=argparse.REMAINDER, metavar="IMAGE [APP FLAGS] [-- ARGS ---]")
    add.set_defaults(handler=run_add)
    for name, text in (("start", "start an added app"), ("stop", "stop a running app"),
                       ("rm", "stop an app and take it out of the pod")):  # fmt: skip
        action = actions.add_parser(name, help=text)
        action.add_argument("pod", metavar="POD")
        action.add_argument("--app", required=True, metavar="NAME", help="the app's name")
        action.set_defaults(handler=run_action, action=name)
    listing = actions.add_parser("list", help="the sandbox's apps and their states")
    listing.add_argument("pod", metavar="POD")
    add_format(listing)
    listing.set_defaults(handler=run_list)
    status = actions.add_parser("status", help="one app's state, exit code and times")
    status.add_argument("pod", metavar="POD")
    status.add_argument("--app", required=True, metavar="NAME", help="the app's name")
    add_format(status)
    status.set_defaults(handler=run_status)


def run_sandbox(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.sandbox import Stage1Failed, create_sandbox
    from stage0.cli.output import stderr_report
    from stage0.cli.run import _request
    from stage0.errors import UsageError

    given = next((f for f, v in (("IMAGE", args.images), ("--pod-manifest", args.pod_manifest),
                                 ("--port", args.port)) if v), None)  # fmt: skip
    if given:
        raise UsageError(
            f"a sandbox starts empty: {given} is not taken here",
            hint="add apps with 'nspod app add POD IMAGE'"
            + (" (ports: run the pod instead)" if given == "--port" else ""),
        )
    try:
        view = create_sandbox(
            options,
            _request(args),
            pull_policy=args.pull_policy,
            uuid_file=args.uuid_file_save,
            report=stderr_report(),
        )
    except Stage1Failed as failed:
        return failed.code  # stage1 said why
    print(view.uuid)
    return 0


def run_add(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.sandbox import Stage1Failed, add_app
    from stage0.cli.app_flags import parse_apps
    from stage0.cli.output import stderr_report
    from stage0.errors import UsageError

    requests = parse_apps(args.images)
    if len(requests) != 1:
        raise UsageError(
            f"app add takes one image, not {len(requests)}", hint="nspod app add POD IMAGE [APP FLAGS]"
        )
    try:
        name = add_app(options, args.pod, requests[0], pull_policy=args.pull_policy, report=stderr_report())
    except Stage1Failed as failed:
        return failed.code
    print(name)
    return 0


def run_action(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api import sandbox

    action = {"start": sandbox.start_app, "stop": sandbox.stop_app, "rm": sandbox.remove_app}[args.action]
    try:
        action(options, args.pod, args.app)
    except sandbox.Stage1Failed as failed:
        return failed.code
    return 0


def _states(options: GlobalOptions, args: argparse.Namespace, app: str | None) -> list[dict[str, object]]:
    from stage0.api.sandbox import app_views

    return [_state(view) for view in app_views(options, args.pod, app)]


def _state(view: AppView) -> dict[str, object]:
    """An app's state as stage1 says it (``app status``): what --format=json shows."""
    return {
        "name": view.name,
        "state": str(view.state),
        "exit_code": view.exit_code,
        "signal": view.signal,
        "started": view.started,
        "exited": view.exited,
        "pid": view.pid,
    }


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.cli.format import table

    states = _states(options, args, None)
    if args.format == "json":
        dump([_json(s) for s in states])
        return 0
    rows = [[str(s["name"]), str(s["state"]), _code(s)] for s in states]
    print(table(rows, ["NAME", "STATE", "EXIT CODE"]), end="")
    return 0


def run_status(options: GlobalOptions, args: argparse.Namespace) -> int:
    (state,) = _states(options, args, args.app)
    if args.format == "json":
        dump(_json(state))
        return 0
    shown = _json(state)
    keys = ("name", "state", "exit_code", "signal", "started", "exited", "pid")
    sys.stdout.write(key_values({key: shown.get(key) for key in keys}))
    return 0


def _json(state: dict[str, object]) -> dict[str, object]:
    times = {k: rfc3339(float(v)) if isinstance(v, int | float) else None for k, v in state.items()
             if k in ("started", "exited")}  # fmt: skip
    return {**{k: v for k, v in state.items() if k != "checked"}, **times}


def _code(state: dict[str, object]) -> str:
    """``0``, ``143(SIGTERM)`` for an app a signal ended, ``-`` before it ended."""
    if state.get("exit_code") is None:
        return "-"
    return str(state["exit_code"]) + (f"({state['signal']})" if state.get("signal") else "")
