"""Argument types and arguments several verb groups share."""

from __future__ import annotations

import argparse
import re


def duration(text: str) -> float:
    """``24h``, ``30m``, ``0s``, ``1h30m`` → seconds (systemd's and rkt's spelling)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"bad duration {text!r} (e.g. 24h, 30m, 0s)")
    return sum(float(n) * units[u] for n, u in parts)


def uuid_args(parser: argparse.ArgumentParser, *, many: bool) -> None:
    parser.add_argument("uuids" if many else "uuid", nargs="*" if many else "?", metavar="UUID")
    parser.add_argument("--uuid-file", metavar="FILE", help="read the UUID from FILE")


def uuids(args: argparse.Namespace) -> list[str]:
    from stage0.errors import UsageError
    from stage0.pods import read_uuid_file

    given = list(getattr(args, "uuids", None) or ([args.uuid] if getattr(args, "uuid", None) else []))
    if args.uuid_file:
        given.append(read_uuid_file(args.uuid_file))
    if not given:
        raise UsageError("no pod given", hint="give a UUID (any unique prefix) or --uuid-file")
    return given
