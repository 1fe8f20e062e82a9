"""``nspod fetch``: get images into the store (by name, URL, file or ID) and print their IDs."""

from __future__ import annotations

import argparse

from stage0.options import GlobalOptions, add_insecure_after_verb


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fetch = verbs.add_parser("fetch", help="fetch images into the store and print their IDs")
    fetch.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="name[:version][,label=value…], https:// URL, file, or image ID",
    )
    fetch.add_argument("--signature", metavar="FILE", help="the detached signature (with one IMAGE)")
    fetch.add_argument(
        "--pull-policy",
        choices=["never", "new", "update"],
        default="update",
        help="never: store only; new: store, else remote; update: always ask the remote (default)",
    )
    add_insecure_after_verb(fetch)
    fetch.set_defaults(handler=run_fetch)


def run_fetch(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.images import pull
    from stage0.cli.output import stderr_report
    from stage0.errors import UsageError
    from stage0.images.fetch.policy import PullPolicy

    if args.signature and len(args.images) != 1:
        raise UsageError("--signature goes with exactly one image")
    report = stderr_report()
    for text in args.images:
        image = pull(
            options, text, policy=PullPolicy(args.pull_policy), signature=args.signature, report=report
        )
        print(image.id)
    return 0
