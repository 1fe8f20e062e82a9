"""``nspod auto-update [--dry-run] [--timeout S] [--format json] [NAME…]``: podman's auto-update for
pod files saying ``auto-update = "registry"``, run by nspod-auto-update.timer (stage0/api/autoupdate.py)."""

from __future__ import annotations

import argparse
import sys

from stage0.cli.output import add_format
from stage0.options import GlobalOptions


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in (0, 3600]")
    return value


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    update = verbs.add_parser(
        "auto-update",
        help="fetch the tags pod files follow (verified), restart pods on new images, roll back",
        description='For each running pod@NAME whose pod file says auto-update = "registry": fetch '
        "its images' tags, verified as 'nspod fetch' verifies them, restart the pod on a changed image "
        "and roll back to the previous one when the new one is not ready in time. Exit status 1 when "
        "an update was rolled back, refused or failed.",
    )
    update.add_argument("names", nargs="*", metavar="NAME", help="only these pods (default: every one)")
    update.add_argument(
        "--dry-run", action="store_true", help="fetch and say what would be updated; restart nothing"
    )
    update.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="how long a restarted pod has to be ready (default: the pod file's auto-update-timeout, 60)",
    )
    add_format(update)
    update.set_defaults(handler=run_auto_update)


def run_auto_update(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.autoupdate import FAILED_RESULTS, auto_update
    from stage0.cli.format import table
    from stage0.cli.output import dump, stderr_report
    from stage0.pods.requests import check_pod_name

    for name in args.names:
        check_pod_name(name, "NAME")
    outcomes = auto_update(
        options, tuple(args.names), dry_run=args.dry_run, timeout=args.timeout, report=stderr_report()
    )
    if args.format == "json":
        dump([outcome.as_dict() for outcome in outcomes])
    else:
        rows = [
            [o.pod, o.image, str(o.result), o.old[:19] or "-", o.new[:19] or "-", o.reason or "-"]
            for o in outcomes
        ]
        sys.stdout.write(table(rows, ["POD", "IMAGE", "RESULT", "OLD", "NEW", "REASON"] if rows else None))
    return 1 if any(o.result in FAILED_RESULTS for o in outcomes) else 0
