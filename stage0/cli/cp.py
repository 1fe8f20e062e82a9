"""``nspod cp SRC DEST``: files into and out of a running app's root (podman's cp), one side
``POD[:APP]:PATH``, resolved inside the app's root (stage0/api/copying.py)."""

from __future__ import annotations

import argparse
import os

from stage0.options import GlobalOptions


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cp = verbs.add_parser(
        "cp", help="copy files into or out of a running pod's app (POD[:APP]:PATH on one side)"
    )
    cp.add_argument("source", metavar="SRC", help="a host path, or POD[:APP]:PATH")
    cp.add_argument("dest", metavar="DEST", help="a host path, or POD[:APP]:PATH")
    cp.set_defaults(handler=run_cp)


def run_cp(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.copying import Owner, copy_in, copy_out, copy_sides
    from stage0.api.processes import app_root, one_app, spec_of
    from stage0.pods.dirs import Pods

    source, dest = copy_sides(args.source, args.dest)
    inside = source if source.pod else dest
    pod = Pods(options.dir).find(inside.pod)
    app = one_app(pod, inside.app)
    rootfd = app_root(pod, app)
    try:
        if source.pod:
            copy_out(rootfd, source.path, dest.path)
        else:
            spec = spec_of(pod)
            shift, chosen = spec.private_users or 0, spec.app(app)
            copy_in(rootfd, source.path, dest.path, Owner(shift + chosen.user, shift + chosen.group))
    finally:
        os.close(rootfd)
    return 0
