"""``nspod events``: what happened to pods and images, read back from the journal (stage0/events.py).

As ``podman events``: it streams (new events as they come, until Ctrl-C) unless ``--no-stream``
(``--stream=false``) asks for the list alone, or an ``--until`` in the past ends it; ``--since``
starts the stream (or the list) that far back. Filters: ``KEY=VALUE``, several per ``--filter``
with commas; the same key again widens (OR), different keys narrow (AND).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping

from stage0.options import GlobalOptions

FILTER_KEYS = ("type", "event", "pod", "app", "image")
TYPES = ("pod", "image")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = verbs.add_parser("events", help="show pod and image events (from the journal)")
    events.add_argument("--since", metavar="TIME", help="from TIME: RFC 3339, unix seconds, or 10m/2h ago")
    events.add_argument(
        "--until", metavar="TIME", help="up to TIME (as --since); a past one ends the stream"
    )
    events.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"keys: {', '.join(FILTER_KEYS)}; e.g. type=pod,event=start (repeatable)",
    )
    events.add_argument("--format", choices=("text", "json"), default="text", help="json: one object a line")
    stream = events.add_mutually_exclusive_group()
    stream.add_argument("--no-stream", action="store_true", help="list the events there are, then end")
    stream.add_argument("--stream", choices=("true", "false"), help=argparse.SUPPRESS)  # podman's spelling
    stream.add_argument("-f", "--follow", action="store_true", help="stream new events (the default)")
    events.set_defaults(handler=run_events)


def point_in_time(text: str, now: float) -> float:
    """``--since``/``--until`` as podman reads them: RFC 3339 (``2026-12-07T21:00:00Z``, an offset,
    a fraction; a date alone is its midnight UTC), unix seconds (``1765141200``), or a duration
    before ``now`` (``10m``, ``2h``, ``1h30m``, ``500ms``)."""
    from stage0.errors import UsageError

    value = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    if _DURATION.fullmatch(value):
        return now - sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", value))
    try:
        when = datetime.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"bad time {text!r}", hint="give RFC 3339 (2026-12-07T21:00:00Z), unix seconds, or 10m/2h ago"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def parse_filters(given: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``--filter`` values → key → accepted values."""
    from stage0.errors import UsageError

    found: dict[str, list[str]] = {}
    for text in given:
        for part in text.split(","):
            key, equals, value = part.partition("=")
            if key not in FILTER_KEYS:
                raise UsageError(f"unknown filter {key!r}", hint=f"filter keys: {', '.join(FILTER_KEYS)}")
            if not equals or not value:
                raise UsageError(f"filter {part!r} has no value", hint=f"write {key}=VALUE")
            if key == "type" and value not in TYPES:
                raise UsageError(f"unknown event type {value!r}", hint=f"types: {', '.join(TYPES)}")
            found.setdefault(key, []).append(value)
    return {key: tuple(values) for key, values in found.items()}


def matches(
    event: str, kind: str, fields: Mapping[str, str], filters: Mapping[str, tuple[str, ...]]
) -> bool:
    """Whether an event passes every filter key; ``pod`` matches the pod's name or a UUID prefix,
    ``image`` an image's ID prefix or its name."""

    def one(key: str, want: str) -> bool:
        match key:
            case "type":
                return kind == want
            case "event":
                return event == want
            case "pod":
                return fields.get("pod_name") == want or fields.get("pod", "").startswith(want)
            case "image":
                return fields.get("image", "").startswith(want) or fields.get("image_name") == want
            case _:
                return fields.get(key) == want

    return all(any(one(key, want) for want in wants) for key, wants in filters.items())


def streams(args: argparse.Namespace, until: float | None, now: float) -> bool:
    if args.no_stream or args.stream == "false":
        return False
    return until is None or until > now


def record(when: float, event: str, kind: str, fields: Mapping[str, str]) -> dict[str, object]:
    """The JSON object of one event: ``time`` (RFC 3339 UTC, microseconds), ``timestamp`` (seconds),
    ``type``, ``event`` and each of its fields by name."""
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"time": stamp, "timestamp": when, "type": kind, "event": event, **fields}


def text_line(when: float, event: str, kind: str, fields: Mapping[str, str]) -> str:
    """podman's shape: time, type, event, subject, then the rest in parentheses."""
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    subject = (
        fields.get("pod_name") or fields.get("pod") or fields.get("image_name") or fields.get("image", "")
    )
    rest = ", ".join(f"{k}={v}" for k, v in fields.items() if v != subject)
    return f"{stamp} {kind} {event} {subject}" + (f" ({rest})" if rest else "")


def run_events(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.events import read

    now = time.time()
    since = point_in_time(args.since, now) if args.since else None
    until = point_in_time(args.until, now) if args.until else None
    filters = parse_filters(args.filter)
    for found in read(since, until, follow=streams(args, until, now)):
        fields = dict(found.fields)
        if not matches(found.event, found.type, fields, filters):
            continue
        if args.format == "json":
            line = json.dumps(record(found.time, found.event, found.type, fields), sort_keys=True)
        else:
            line = text_line(found.time, found.event, found.type, fields)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0
