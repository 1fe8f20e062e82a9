"""podman's habits on ``nspod run|prepare``, where they do not clash with rkt's syntax (README,
"Coming from podman"). The aliases of rkt's flags (``-d``, ``-e``, ``--env``, ``--env-file``, ``-v``)
sit on the flags themselves (stage0/cli/run.py); the flags here are podman's alone:

    -p, --publish [IP:]HOSTPORT:PORT[/PROTO]   forward by port number (rkt's --port names the port)
    -u, --user USER[:GROUP]                    every app's user, unless the app's own --user says
    -w, --workdir DIR                          every app's working directory, likewise

podman's flags come before the image, so these are pod flags that reach every app; after an
image, ``-e``, ``-u`` and ``-w`` are that app's alone (stage0/cli/app_flags.py).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stage0.pods.requests import PodRequest


def add_podman_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("podman's flags (for every app; -u, -w after an image: that app's)")
    group.add_argument(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:]HOSTPORT:PORT[/tcp|udp]",
        help="forward a host port to the app's port of that number (one is made up if the image has none)",
    )
    group.add_argument("-u", "--user", metavar="USER[:GROUP]", help="the apps' user (and group)")
    group.add_argument("-w", "--workdir", metavar="DIR", help="the apps' working directory")


def apply(args: argparse.Namespace, request: PodRequest) -> PodRequest:
    """The request with podman's flags folded in: -v's volumes and mounts, -p's ports, -u and -w."""
    from stage0.errors import UsageError
    from stage0.pods.podman import parse_publish, split_user, split_volumes

    _, volumes, mounts = split_volumes(args.volume)
    given = getattr(args, "user", None)  # `app sandbox` has no apps and takes none of these
    user, group = split_user(given) if given else (None, None)
    workdir = getattr(args, "workdir", None)
    if workdir is not None and not workdir.startswith("/"):
        raise UsageError(f"bad -w {workdir!r}: not an absolute path", hint="-w /PATH/IN/THE/APP")
    apps = tuple(
        dataclasses.replace(app, working_dir=app.working_dir or workdir)
        if app.user  # the app's own --user (and --group) win whole
        else dataclasses.replace(
            app, user=user, group=app.group or group, working_dir=app.working_dir or workdir
        )
        for app in request.apps
    )
    return dataclasses.replace(
        request,
        apps=apps,
        volumes=(*request.volumes, *volumes),
        mounts=(*request.mounts, *mounts),
        ports=(*request.ports, *(parse_publish(p) for p in getattr(args, "publish", []))),
    )
