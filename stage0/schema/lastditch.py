"""A lenient reader for manifests that no longer validate (the appc "lastditch" idea).

``list``, ``gc`` and ``rm`` must still work on an image or pod whose manifest is broken, so this
reader takes whatever it can and never raises on content: missing or wrong-typed fields become
``None`` or empty.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LooseManifest:
    kind: str | None
    name: str | None
    labels: tuple[tuple[str, str], ...]
    app_names: tuple[str, ...]


def _pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        (str(item["name"]), str(item.get("value", "")))
        for item in raw
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    )


def read_loose(data: bytes) -> LooseManifest:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict):
        return LooseManifest(None, None, (), ())
    apps = obj.get("apps")
    names = (
        tuple(a["name"] for a in apps if isinstance(a, dict) and isinstance(a.get("name"), str))
        if isinstance(apps, list)
        else ()
    )
    kind, name = obj.get("acKind"), obj.get("name")
    return LooseManifest(
        kind if isinstance(kind, str) else None,
        name if isinstance(name, str) else None,
        _pairs(obj.get("labels")),
        names,
    )
