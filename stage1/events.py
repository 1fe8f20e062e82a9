"""nspod's events as journal entries, written where they happen on stage1's side (a pod started,
ready, an app's exit, the pod's stop): ``emit("start", pod=uuid, pod_name=machine)``.

An event is one native-protocol entry with nspod's own fields, so ``nspod events`` reads it back
after any restart and ``journalctl MESSAGE_ID=…`` shows it as well:

* ``MESSAGE_ID``: one per event name, ``uuid5(NAMESPACE_URL, "nspod:event:<name>")`` without
  dashes (:func:`message_id`; stage0/events.py computes the same, a unit test keeps them equal);
* ``SYSLOG_IDENTIFIER=nspod-event`` (what ``nspod events`` matches, with ``_UID=0``: only root's
  entries count, journald sets ``_UID`` itself, so another user cannot forge one);
* ``NSPOD_EVENT`` (the name), ``NSPOD_TYPE`` (``pod`` or ``image``), and one ``NSPOD_<KEY>`` per
  keyword: ``pod`` (UUID), ``pod_name``, ``app``, ``image``, ``exit_code``, ``signal``, …

Never ``POD_UUID=``: that is the pod's output (stage1/journal.py), which an event is not. stage1
never imports stage0, so stage0 has a twin of this module (stage0/events.py) for its own events.
"""

from __future__ import annotations

import re
import uuid

from stage1.journal import send

IDENTIFIER = "nspod-event"
IMAGE_EVENTS = frozenset({"pull", "verify", "image-remove"})
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,40}")


def message_id(event: str) -> str:
    """The event's MESSAGE_ID: nspod's own, one per event name, the same in every version."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"nspod:event:{event}").hex


def event_type(event: str) -> str:
    return "image" if event in IMAGE_EVENTS else "pod"


def entry(event: str, fields: dict[str, object]) -> dict[str, bytes]:
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
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": IDENTIFIER,
        "NSPOD_EVENT": event,
        "NSPOD_TYPE": event_type(event),
        **{f"NSPOD_{k.upper()}": v for k, v in sorted(shown.items())},
    }
    return {k: v.encode() for k, v in result.items()}


def emit(event: str, **fields: object) -> None:
    """Log ``event`` to the host's journal; lost quietly when journald is not there (an event
    never fails what it reports)."""
    send(entry(event, fields))
