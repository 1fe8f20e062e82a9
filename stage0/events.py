"""nspod's events, written to and read from the host's journal.

Writing: ``emit(event, **fields)`` where stage0 does what the event says (``create``, ``remove``,
``pull``, ``verify``, ``image-remove``; health checks and auto-update add theirs, e.g.
``emit("health_status", pod=uuid, pod_name=name, app=app, health="unhealthy")``): one entry over
journald's native protocol with nspod's own fields, the same as stage1/events.py writes for what
stage1 sees (``start``, ``ready``, ``exited``, ``stop``). stage0 may not import stage1 beyond its
ABI, so this is its twin; tests/unit/test_events.py keeps the two writing the same entries.

* ``MESSAGE_ID``: ``uuid5(NAMESPACE_URL, "nspod:event:<name>")`` without dashes, one per event;
* ``SYSLOG_IDENTIFIER=nspod-event``; ``NSPOD_EVENT``, ``NSPOD_TYPE`` (``pod`` or ``image``);
* ``NSPOD_<KEY>`` per keyword (``pod``: UUID, ``pod_name``, ``app``, ``image``, ``exit_code``,
  ``signal``, …); a keyword whose value is None is left out.

Reading: :func:`read` runs ``journalctl --output=json`` on root's entries (``_UID=0``, which
journald sets itself: no other user can forge an nspod event) and yields :class:`Event`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

IDENTIFIER = "nspod-event"
# the health checks' entries, written inside a pod (stage1/scripts/health.py) through the host
# journal's socket bound in: its own fields (NSPOD_POD is the pod's name, NSPOD_POD_UUID its UUID)
HEALTH_IDENTIFIER = "nspod-health"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
IMAGE_EVENTS = frozenset({"pull", "verify", "image-remove"})
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,40}")


def message_id(event: str) -> str:
    """The event's MESSAGE_ID: nspod's own, one per event name, the same in every version."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"nspod:event:{event}").hex


def event_type(event: str) -> str:
    return "image" if event in IMAGE_EVENTS else "pod"


def entry(event: str, fields: dict[str, object], priority: int = 6) -> dict[str, bytes]:
    """The journal fields of one event (keywords with a None value are left out)."""
    if not _NAME.fullmatch(event):
        raise ValueError(f"bad event name {event!r}")
    shown = {k: str(v) for k, v in fields.items() if v is not None}
    for key in shown:
        if not _KEY.fullmatch(key):
            raise ValueError(f"bad event field {key!r}")
    subject = shown.get("pod_name") or shown.get("pod") or shown.get("image") or ""
    detail = " ".join(f"{k}={v}" for k, v in sorted(shown.items()) if k not in ("pod_name",))
    message = f"nspod {event_type(event)} {subject}: {event}" + (f" ({detail})" if detail else "")
    result = {
        "MESSAGE": message,
        "MESSAGE_ID": message_id(event),
        "PRIORITY": str(priority),
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "NSPOD_EVENT": event,
        "NSPOD_TYPE": event_type(event),
        **{f"NSPOD_{k.upper()}": v for k, v in sorted(shown.items())},
    }
    return {k: v.encode() for k, v in result.items()}


def emit(event: str, *, priority: int = 6, **fields: object) -> None:
    """Log ``event`` to the host's journal (``priority``: syslog's, 4 for a warning); lost quietly
    when journald is not there (an event never fails what it reports)."""
    datagram = b"".join(
        key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        for key, value in entry(event, fields, priority).items()
    )
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(datagram, JOURNAL_SOCKET)


@dataclass(frozen=True, slots=True)
class Event:
    """One event as read back: its time (seconds since the epoch), name, type and fields (the
    ``NSPOD_`` keywords, lower-case, without the prefix)."""

    time: float
    event: str
    type: str
    fields: tuple[tuple[str, str], ...]

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.fields if k == key), None)

    @classmethod
    def of(cls, record: dict[str, object]) -> Event | None:
        """An event from one ``journalctl --output=json`` record; None for what is not one."""
        if record.get("SYSLOG_IDENTIFIER") == HEALTH_IDENTIFIER:
            record = _health(record)
        name, kind = record.get("NSPOD_EVENT"), record.get("NSPOD_TYPE")
        stamp = record.get("__REALTIME_TIMESTAMP")
        if not isinstance(name, str) or not isinstance(kind, str) or not isinstance(stamp, str):
            return None
        fields = tuple(
            sorted(
                (key[len("NSPOD_") :].lower(), value)
                for key, value in record.items()
                if key.startswith("NSPOD_")
                and key not in ("NSPOD_EVENT", "NSPOD_TYPE")
                and isinstance(value, str)
            )
        )
        return cls(int(stamp) / 1e6, name, kind, fields)


def _health(record: dict[str, object]) -> dict[str, object]:
    renamed = {"NSPOD_POD": "NSPOD_POD_NAME", "NSPOD_POD_UUID": "NSPOD_POD"}
    return {"NSPOD_TYPE": "pod", **{renamed.get(k, k): v for k, v in record.items()}}


def journalctl_argv(since: float | None, follow: bool) -> list[str]:
    argv = ["journalctl", "--output=json", "--no-pager", "--quiet", "--all"]
    if since is not None:
        argv.append(f"--since=@{since:.6f}")
    if follow:
        argv.append("--follow")
        if since is None:
            argv.append("--lines=0")  # podman's stream: from now on unless --since says otherwise
    # root's entries alone, or a pod's health checks' (in a pod's unit: machine.slice, which journald
    # derives from the sender's cgroup itself, so no user's process can claim it)
    health = [
        f"SYSLOG_IDENTIFIER={HEALTH_IDENTIFIER}",
        "NSPOD_EVENT=health_status",
        "_SYSTEMD_SLICE=machine.slice",
    ]
    return [*argv, f"SYSLOG_IDENTIFIER={IDENTIFIER}", "_UID=0", "+", *health]


def read(since: float | None, until: float | None, *, follow: bool) -> Iterator[Event]:
    """The events from ``since`` to ``until`` in journal order; following: as they come, until
    ``until`` has passed (no end without one: the caller is interrupted)."""
    from stage0.host.runner import DEVNULL, PIPE, spawn

    with spawn(journalctl_argv(since, follow), stdin=DEVNULL, stdout=PIPE, stderr=2) as process:
        assert process.stdout is not None
        fd, pending = process.stdout.fileno(), b""  # read raw: select sees what is not yet read
        try:
            while True:
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    record = json.loads(line) if line.strip() else None
                    event = Event.of(record) if isinstance(record, dict) else None
                    if event is not None and until is not None and event.time > until:
                        return
                    if event is not None:
                        yield event
                if follow and until is not None and time.time() > until:
                    return
                if select.select([fd], [], [], 0.25 if follow else None)[0]:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        return  # journalctl ended: everything was read
                    pending += chunk
        finally:
            process.terminate()
