"""Unit files as data: a unit is a list of (section, key, value) entries, rendered in one place.

Values are built with stage1/escape.py (quoting, specifiers, paths); :func:`render` then refuses
what no quoting can carry — a line break would end the setting and start another — so no value,
whatever a manifest holds, can add a setting of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from stage1.abi import Error

Entry = tuple[str, str, str]  # (section, key, value)
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SECTION = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


def section(name: str, *settings: tuple[str, str] | None) -> list[Entry]:
    """Entries of one section; a None setting is left out (an optional one not set)."""
    return [(name, key, value) for key, value in (s for s in settings if s is not None)]


def render(unit: Iterable[Entry]) -> str:
    """The unit file: sections in the order they first appear, settings in order."""
    sections: dict[str, list[str]] = {}
    for name, key, value in unit:
        if not _SECTION.fullmatch(name) or not _KEY.fullmatch(key):
            raise Error(f"bad unit setting [{name}] {key}", hint="this is a bug in nspod's unit generator")
        if any(c in value for c in "\n\r\0"):
            raise Error(
                f"{key}= would hold a line break: {value!r}",
                hint="remove control characters from the manifest's values",
            )
        sections.setdefault(name, []).append(f"{key}={value}")
    return "\n".join(
        f"[{name}]\n" + "".join(f"{line}\n" for line in lines) for name, lines in sections.items()
    )
