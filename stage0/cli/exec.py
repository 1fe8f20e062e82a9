"""``nspod exec``: ``enter`` with podman's flags (``-i``, ``-t``, ``-e``, ``-u``, ``-w``). The
command runs in the app's confinement exactly as ``enter``'s does (stage1/enter.py); the flags
only choose its stdin and terminal, add to its environment, and change its user or directory."""

from __future__ import annotations

import argparse
import os
import re

from stage0.host.stage1client import Entering, Stage1Client
from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    exe = verbs.add_parser(
        "exec",
        help="run a command in a running pod's app (podman's exec; options go before POD)",
    )
    exe.add_argument("--app", help="the app (needed when the pod has several)")
    exe.add_argument("-i", "--interactive", action="store_true", help="keep stdin open (else /dev/null)")
    exe.add_argument("-t", "--tty", action="store_true", help="give the command a terminal (a pty)")
    exe.add_argument(
        "-e",
        "--env",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="set an environment variable (KEY alone: its value here, if set)",
    )
    exe.add_argument("-u", "--user", metavar="USER[:GROUP]", help="run as this user (names: the app's)")
    exe.add_argument("-w", "--workdir", metavar="DIR", help="run in this directory of the app")
    exe.add_argument("pod", metavar="POD", help="the pod's UUID (any unique prefix) or name")
    exe.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD")
    exe.set_defaults(handler=run_exec)


def environment(given: list[str], host: dict[str, str]) -> list[str]:
    """``-e`` words as KEY=VALUE (``KEY`` alone: the host's value, left out when unset)."""
    from stage0.errors import UsageError

    out = []
    for word in given:
        key, sep, _ = word.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key) or "\0" in word:
            raise UsageError(f"bad environment variable {word!r}", hint="give KEY=VALUE or KEY")
        if sep:
            out.append(word)
        elif key in host:
            out.append(f"{key}={host[key]}")
    return out


def run_exec(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.processes import check_workdir, one_app, resolve_user, running
    from stage0.errors import UsageError
    from stage0.pods.dirs import Pods

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("exec needs a command", hint="nspod exec [OPTIONS] POD -- CMD [ARGS…]")
    if args.workdir is not None and not args.workdir.startswith("/"):
        raise UsageError(f"bad working directory {args.workdir!r}", hint="give an absolute path in the app")
    env = environment(args.env, dict(os.environ))
    pod = Pods(options.dir).find(args.pod)
    running(pod)
    app = one_app(pod, args.app)
    user = None
    if args.user is not None:
        uid, gid = resolve_user(pod, app, args.user)
        user = f"{uid}:{gid}"
    if args.workdir:
        check_workdir(pod, app, args.workdir)
    if not args.interactive:  # podman's: the command reads nothing unless asked to
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    how = Entering(tuple(env), user, args.workdir or None, bool(args.tty))
    return Stage1Client.of(options, pod.path).enter(app, command, how)
