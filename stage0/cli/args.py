"""Argument types and arguments several verb groups share."""

from __future__ import annotations

import argparse
import re


def duration(text: str) -> float:
    """``24h``, ``30m``, ``0s``, ``1h30m`` → seconds (systemd's and rkt's spelling); a bare number
    is seconds, as systemd reads it (``--grace-period=0``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 24h, 30m, 0s)")
    return sum(float(n) * units[u] for n, u in parts)


def uuid_args(parser: argparse.ArgumentParser, *, many: bool) -> None:
    parser.add_argument(
        "uuids" if many else "uuid",
        nargs="*" if many else "?",
        metavar="UUID",
        help="the pod's UUID (any unique prefix) or name",
    )
    parser.add_argument("--uuid-file", metavar="FILE", help="read the UUID from FILE")


def uuids(args: argparse.Namespace) -> list[str]:
    from stage0.errors import UsageError
    from stage0.pods.dirs import read_uuid_file

    given = list(getattr(args, "uuids", None) or ([args.uuid] if getattr(args, "uuid", None) else []))
    if args.uuid_file:
        given.append(read_uuid_file(args.uuid_file))
    if not given:
        raise UsageError(
            "no pod given", hint="give a pod's name or UUID (any unique prefix), or --uuid-file"
        )
    return given


def wait_timeout(args: argparse.Namespace, flag: str) -> float | None:
    """``status --wait[=TIMEOUT]``'s timeout (0: none). argparse hands the word after the flag to
    its optional value, which in ``status --wait web`` is the pod: with no other pod given, it is
    taken as the pod (and the wait has no timeout)."""
    from stage0.errors import UsageError

    value = getattr(args, flag)
    if value is None:
        return None
    if not args.uuid and not args.uuid_file:
        args.uuid = value
        return 0.0
    try:
        return duration(value)
    except argparse.ArgumentTypeError as error:
        raise UsageError(str(error), hint=f"--{flag.replace('_', '-')}=TIMEOUT, e.g. 30s") from None
