"""``nspod top POD [--app NAME]``: a running pod's apps' processes, from their control groups."""

from __future__ import annotations

import argparse
import os
import sys

from stage0.options import GlobalOptions

TICKS = os.sysconf("SC_CLK_TCK")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = verbs.add_parser("top", help="list the processes of a running pod's apps")
    top.add_argument("--app", help="that app alone (default: every app, with an APP column)")
    top.add_argument("pod", metavar="POD", help="the pod's UUID (any unique prefix) or name")
    top.set_defaults(handler=run_top)


def cpu_time(ticks: int) -> str:
    """ps's TIME: ``[DD-]HH:MM:SS`` of CPU time."""
    seconds = ticks // TICKS
    days, rest = divmod(seconds, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{text}" if days else text


def shown(text: str) -> str:
    """An app's own text (a command line, a user name of its passwd) as the terminal may print it:
    a control character escaped (``\\x1b``), never obeyed (a title set, the screen cleared, a line
    forged)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def run_top(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.processes import app_accounts, chosen_apps, processes
    from stage0.cli.format import table
    from stage0.errors import Error
    from stage0.pods.dirs import Pods

    pod = Pods(options.dir).find(args.pod)
    apps = chosen_apps(pod, args.app)
    rows = processes(pod, apps)
    names: dict[str, dict[int, str]] = {}
    for app in {app for app, _ in rows}:
        try:  # the user names the app itself knows
            names[app] = {uid: name for name, (uid, _) in reversed(app_accounts(pod, app, "passwd").items())}
        except (Error, OSError):
            names[app] = {}
    cells = [
        [
            *([app] if args.app is None else []),
            str(p.pod_pid),
            shown(names[app].get(p.uid, str(p.uid))),
            cpu_time(p.cpu_ticks),
            shown(p.command),
        ]
        for app, p in rows
    ]
    legend = [*(["APP"] if args.app is None else []), "PID", "USER", "TIME", "COMMAND"]
    sys.stdout.write(table(cells, legend))
    return 0
