"""The nspawn flavor's entry points: ``python -m stage1 VERB POD_DIR …`` (abi.ENTRYPOINTS; see ABI.md)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from stage1.abi import Error, ExitCode
from stage1.enter import split_command
from stage1.stdio import Stdio


def main(argv: list[str] | None = None) -> int:
    argv, command = split_command(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="nspod-stage1", description="nspod's systemd executor")
    parser.add_argument("--debug", action="store_true")
    verbs = parser.add_subparsers(dest="verb", required=True)
    run = verbs.add_parser("run")
    run.add_argument("pod_dir")
    run.add_argument("--detach", action="store_true")
    # a foreground pod's stdio (stage1/stdio.py); a detached one's is the journal
    foreground = [s.value for s in Stdio if s is not Stdio.JOURNAL]
    run.add_argument("--stdio", choices=foreground, default=Stdio.ATTACHED.value)
    execute = verbs.add_parser("exec")
    execute.add_argument("pod_dir")
    stop = verbs.add_parser("stop")
    stop.add_argument("pod_dir")
    stop.add_argument("--force", action="store_true")
    halt = verbs.add_parser("halt")  # ExecStop of pod@.service: $MAINPID is the pod's nspawn
    halt.add_argument("pod_dir")
    logs = verbs.add_parser("logs")
    logs.add_argument("pod_dir")
    logs.add_argument("--follow", action="store_true")
    logs.add_argument("--app")
    logs.add_argument("--tail", type=int, help="the last N lines of what is there (then new ones)")
    logs.add_argument("--since", type=float, help="seconds since the epoch")
    logs.add_argument("--until", type=float, help="seconds since the epoch")
    logs.add_argument("--timestamps", action="store_true")
    gc = verbs.add_parser("gc")
    gc.add_argument("pod_dir")
    sweep = verbs.add_parser("sweep")  # POD_DIR: the pods directory (stage1/orphans.py)
    sweep.add_argument("pod_dir")
    updating = verbs.add_parser("update")
    updating.add_argument("pod_dir")
    updating.add_argument("--app")
    updating.add_argument("--memory", type=int, help="bytes")
    updating.add_argument("--cpu", type=int, help="percent of one CPU")
    # a CRI container's resources (stage0/cri/resources.py)
    updating.add_argument("--cpu-shares", type=int)
    updating.add_argument("--cpu-quota-us", type=int)
    updating.add_argument("--cpu-period-us", type=int)
    updating.add_argument("--cpuset-cpus")
    updating.add_argument("--cpuset-mems")
    app = verbs.add_parser("app")  # an app sandbox's apps (stage1/nspawn/apps.py)
    app.add_argument("pod_dir")
    app.add_argument("action", choices=["add", "start", "stop", "rm", "status"])
    app.add_argument("--app")
    app.add_argument("--timeout", type=float, help="stop: seconds before SIGKILL (default: the app's own)")
    enter = verbs.add_parser("enter")
    enter.add_argument("pod_dir")
    enter.add_argument("--app")
    # nspod exec's: more environment, another user (UID:GID) or working directory, a pty or none
    enter.add_argument("--env", action="append", default=[])
    enter.add_argument("--user")
    enter.add_argument("--workdir")
    enter.add_argument("--tty", choices=["auto", "yes", "no"], default="auto")
    enter.add_argument("command", nargs="*")  # without "--": words that look like no option
    args = parser.parse_args(argv)
    from stage1.nspawn import run as entry

    try:
        match args.verb:
            case "run":
                stdio = Stdio.JOURNAL if args.detach else Stdio(args.stdio)
                return entry.run(args.pod_dir, detach=args.detach, debug=args.debug, stdio=stdio)
            case "exec":
                return entry.exec_in_place(args.pod_dir, debug=args.debug)
            case "stop":
                return entry.stop(args.pod_dir, force=args.force)
            case "gc":
                return entry.gc(args.pod_dir)
            case "sweep":
                from stage1 import orphans

                orphans.sweep(args.pod_dir)
                return 0
            case "halt":
                return entry.halt_in_place(args.pod_dir)
            case "logs":
                from stage1 import logs as journal_logs
                from stage1.journal import Window

                window = Window(args.since, args.until, args.tail, args.timestamps)
                return journal_logs.logs(args.pod_dir, follow=args.follow, app=args.app, window=window)
            case "app":
                from stage1.nspawn import apps

                if args.action == "status":
                    return apps.status(args.pod_dir, args.app)
                if not args.app:
                    raise Error(f"app {args.action} needs --app NAME")
                if args.action == "stop":
                    return apps.stop(args.pod_dir, args.app, args.timeout)
                action = {"add": apps.add, "start": apps.start, "rm": apps.remove}
                return action[args.action](args.pod_dir, args.app)
            case "update":
                from stage1.nspawn.update import cri_properties, update
                from stage1.poddir import load

                more = cri_properties(
                    shares=args.cpu_shares,
                    quota_us=args.cpu_quota_us,
                    period_us=args.cpu_period_us,
                    cpus=args.cpuset_cpus,
                    mems=args.cpuset_mems,
                )
                return update(*load(args.pod_dir), args.app, args.memory, args.cpu, more)
            case _:
                if not (args.env or args.user or args.workdir) and args.tty == "auto":
                    return entry.enter(args.pod_dir, args.app, [*args.command, *command])
                from stage1.nspawn.entering import enter_command
                from stage1.nspawn.exec_as import Overrides  # nspod exec's

                overrides = Overrides.parse(args.env, args.user, args.workdir)
                term = os.environ.get("TERM", "dumb")
                cmd = [*args.command, *command] or ["/bin/sh"]
                tty = args.tty == "yes"
                argv, _ = enter_command(args.pod_dir, args.app, cmd, tty=tty, term=term, overrides=overrides)
                os.execv(argv[0], argv)
    except Error as error:
        if args.debug:
            traceback.print_exc()
        print(f"nspod: {error.diagnostics()}", file=sys.stderr)
        return ExitCode.FAILURE


if __name__ == "__main__":
    sys.exit(main())
