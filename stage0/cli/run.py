"""``nspod run|prepare|run-prepared``: make a pod from images and run it (rkt's positional syntax).

    nspod run [POD FLAGS] IMAGE [APP FLAGS] [-- ARGS… [---]] [IMAGE [APP FLAGS] …]

Flags after an image apply to that image; ``--`` starts its arguments, ``---`` ends them.
podman's ``run [-d -e -v -p -u -w] IMAGE /COMMAND ARGS`` works too (stage0/cli/podman_flags.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import TYPE_CHECKING

from stage0.api.pods import Prepared, prepare, relaxing
from stage0.cli.app_flags import APP_EPILOG, add_health_arguments, parse_apps, with_pod_health
from stage0.cli.podman_flags import add_podman_arguments
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.pods.requests import PodRequest
    from stage0.pool.run import Command


def _pod_arguments(parser: argparse.ArgumentParser, *, runtime: bool) -> None:
    from stage0.options import add_insecure_after_verb
    from stage0.pods.dns import add_dns_arguments
    from stage0.pods.network import add_network_arguments

    add_insecure_after_verb(parser)
    parser.add_argument("--name", dest="pod_name", help="machine name (default: nspod-UUID)")
    parser.add_argument("--hostname", help="the pod's host name (default: its machine name)")
    parser.add_argument(
        "-e",
        "--env",
        "--set-env",
        dest="set_env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="env for every app",
    )
    parser.add_argument(
        "--env-file",
        "--set-env-file",
        dest="set_env_file",
        metavar="FILE",
        help="NAME=VALUE lines for every app",
    )
    parser.add_argument("--inherit-env", action="store_true", help="start from nspod's own environment")
    parser.add_argument("--uuid-file-save", metavar="FILE", help="write the pod's UUID here, first thing")
    parser.add_argument(
        "--pull-policy",
        choices=["never", "new", "update"],
        default="new",
        help="never: the store only; new (default): the store, else fetch; update: ask the remote",
    )
    parser.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="NAME,kind=…|/HOST:/PATH[:ro]",
        help="a pod volume: NAME,kind=host,source=/path[,readOnly=true] or NAME,kind=empty; with"
        " --private-users, idmap=true makes the pod's root host root on it (default: the pod's own user);"
        " podman's /HOST:/PATH[:ro] is a host volume mounted in every app",
    )
    parser.add_argument(
        "--mount",
        action="append",
        default=[],
        metavar="volume=NAME,target=/path",
        help="mount a volume into every app (after an image: into that app)",
    )
    parser.add_argument(
        "--private-users",
        action="store_true",
        help="a user namespace of the pod's own: its root is an unprivileged host user, on its volumes"
        " too (unless a --volume says idmap=true)",
    )
    add_dns_arguments(parser)
    add_network_arguments(parser)
    parser.add_argument(
        "--pod-manifest",
        metavar="FILE",
        help="an appc pod manifest saying what the pod holds (instead of IMAGEs)",
    )
    if runtime:
        _start_arguments(parser)
        parser.add_argument("--rm", action="store_true", help="remove the pod once it has ended")
        parser.add_argument(
            "--save-as",
            metavar="NAME",
            help="write the pod file NAME.toml for this command line (for pod@NAME) and exit",
        )
    add_health_arguments(parser)
    parser.add_argument("images", nargs=argparse.REMAINDER, metavar="IMAGE [APP FLAGS] [-- ARGS ---]")


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--detach", action="store_true", help="return once the pod is ready")
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="the app reads nspod's stdin (a pod of one app)"
    )
    parser.add_argument(
        "-t", "--tty", action="store_true", help="give the app this terminal (a pod of one app; implies -i)"
    )


def _stdio(args: argparse.Namespace, apps: int | None = None) -> list[str]:
    """stage1's ``run`` options for how the pod's apps meet nspod's stdio (stage1/stdio.py)."""
    from stage0.errors import UsageError

    wanted = "--tty" if args.tty else "--interactive" if args.interactive else None
    if args.detach:
        if wanted:
            raise UsageError(f"{wanted} needs a pod in the foreground", hint="drop --detach")
        return ["--detach"]
    if wanted is None:
        return []
    if apps is not None and apps != 1:
        raise UsageError(
            f"{wanted} gives nspod's stdin to one app, and this pod has {apps}",
            hint="run the apps in pods of their own",
        )
    if args.tty and not os.isatty(0):
        raise UsageError(
            "--tty needs a terminal on stdin", hint="use --interactive to pass stdin as a stream"
        )
    return [f"--stdio={wanted[2:]}"]


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = verbs.add_parser(
        "run",
        help="run a pod in the foreground (or --detach)",
        epilog=APP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _pod_arguments(run, runtime=True)
    add_podman_arguments(run)
    run.set_defaults(handler=run_run)
    prepare = verbs.add_parser(
        "prepare",
        help="prepare a pod to run later; prints its UUID",
        epilog=APP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _pod_arguments(prepare, runtime=False)
    add_podman_arguments(prepare)
    prepare.add_argument("--quiet", action="store_true", help="print only the UUID")
    prepare.set_defaults(handler=run_prepare)
    prepared = verbs.add_parser("run-prepared", help="run a prepared pod")
    prepared.add_argument("uuid", metavar="UUID")
    _start_arguments(prepared)
    prepared.set_defaults(handler=run_run_prepared)


def _request(args: argparse.Namespace) -> PodRequest:
    from stage0.cli.podman_flags import apply
    from stage0.pods.dns import dns_request
    from stage0.pods.network import net_words, parse_port
    from stage0.pods.podman import is_podman_volume
    from stage0.pods.requests import PodRequest, parse_env, parse_mount, parse_volume, read_env_file

    base = _from_manifest(args) if args.pod_manifest else PodRequest(apps=())
    request = dataclasses.replace(
        base,
        apps=base.apps or tuple(with_pod_health(parse_apps(args.images), args)),
        name=args.pod_name,
        hostname=args.hostname,
        set_env=tuple(parse_env(e, "-e/--set-env") for e in args.set_env),
        env_file=read_env_file(args.set_env_file) if args.set_env_file else (),
        inherit_env=dict(os.environ) if args.inherit_env else {},
        volumes=base.volumes or tuple(parse_volume(v) for v in args.volume if not is_podman_volume(v)),
        mounts=tuple(parse_mount(m) for m in args.mount),
        private_users=args.private_users,
        dns=dns_request(args),
        nets=net_words(args.net) if args.net else base.nets,
        ports=tuple(parse_port(p) for p in args.port) or base.ports,
        mds_register=args.mds_register,
    )
    return apply(args, request)  # podman's -v, -p, -u, -w


def pooled_command(argv: list[str]) -> Command | None:
    """A ``run`` handed to the pool keeper, parsed as this command line parses it (None: wrong)."""
    from stage0.cli import build_parser
    from stage0.pool.run import Command

    try:
        args, extra = build_parser(argv).parse_known_args(argv)
    except SystemExit:
        return None
    if extra:
        return None
    return Command(args, GlobalOptions.from_args(args), lambda: _request(args))


def _from_manifest(args: argparse.Namespace) -> PodRequest:
    """--pod-manifest FILE: the pod the manifest describes (stage0/pods/manifest_input.py); the images, their
    flags, volumes and mounts are the manifest's alone."""
    from stage0.errors import InputError, UsageError
    from stage0.pods.manifest_input import pod_request
    from stage0.schema.boundary import parse_pod_manifest

    clash = next((flag for flag, given in (("IMAGE", args.images), ("--volume", args.volume),
                                           ("--mount", args.mount)) if given), None)  # fmt: skip
    if clash:
        raise UsageError(f"--pod-manifest and {clash} both say what the pod holds", hint="give one of them")
    try:
        with open(args.pod_manifest, "rb") as file:
            data = file.read()
    except OSError as error:
        raise InputError(f"cannot read {args.pod_manifest}: {error.strerror}") from None
    return pod_request(parse_pod_manifest(data, args.pod_manifest), args.pod_manifest)


def _prepare(options: GlobalOptions, args: argparse.Namespace, *, to_run: bool) -> Prepared:
    from stage0.cli.output import stderr_report

    request = _request(args)
    return prepare(
        options,
        request,
        to_run=to_run,
        pull_policy=args.pull_policy,
        uuid_file=args.uuid_file_save,
        report=stderr_report(),
    )


def run_run(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.errors import UsageError

    if args.save_as:
        from stage0.pods.podfile import save

        if args.inherit_env:
            raise UsageError(
                "--inherit-env cannot be saved in a pod file", hint="list the variables with --set-env"
            )
        if args.pod_manifest:
            raise UsageError("a --pod-manifest pod cannot be saved as a pod file", hint="run it as it is")
        print(
            save(relaxing(options, _request(args)), args.save_as, os.path.join(options.local_config, "pods"))
        )
        return 0
    if args.rm and args.detach:
        raise UsageError(
            "--rm needs a foreground run", hint="remove a detached pod with 'nspod rm' once it ended"
        )
    stdio = _stdio(args, len(parse_apps(args.images)))  # before anything is fetched
    pod = _prepare(options, args, to_run=True)
    code = pod.start(options, *stdio)
    if args.detach and code == 0:  # a pod that did not start gets no UUID printed (stage1 named it)
        print(os.path.basename(pod.path))
    if args.rm:
        from stage0.api.pods import find, remove_dir

        remove_dir(options, find(options, os.path.basename(pod.path)))
    return code


def run_prepare(options: GlobalOptions, args: argparse.Namespace) -> int:
    print(os.path.basename(_prepare(options, args, to_run=False).path))
    return 0


def run_run_prepared(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import start_prepared

    stdio = _stdio(args)
    pod = start_prepared(options, args.uuid)
    if (code := pod.start(options, *stdio)) == 0 and args.detach:
        print(os.path.basename(pod.path))  # only for a pod that started
    return code
