"""What the CLI prints for people: tables, sizes, ages and times, and the columns of
``nspod image list`` (``--format=json`` is stage0/cli/output.py's)."""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stage0.api.views import ImageView


class Field(enum.StrEnum):
    ID = "id"
    NAME = "name"
    SIZE = "size"
    IMPORTTIME = "importtime"
    LASTUSED = "lastused"
    LATEST = "latest"
    SIGNER = "signer"
    SOURCE = "source"
    DIGEST = "digest"  # an OCI image's manifest digest
    SHARED = "shared"  # bytes of an OCI image's layers other images list too
    OWN = "own"  # bytes of the layers only it lists


HEADERS = {
    Field.ID: "ID",
    Field.NAME: "NAME",
    Field.SIZE: "SIZE",
    Field.IMPORTTIME: "IMPORT TIME",
    Field.LASTUSED: "LAST USED",
    Field.LATEST: "LATEST",
    Field.SIGNER: "SIGNER",
    Field.SOURCE: "SOURCE",
    Field.DIGEST: "DIGEST",
    Field.SHARED: "SHARED",
    Field.OWN: "OWN",
}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


def ago(when: float, now: float) -> str:
    seconds = max(0, int(now - when))
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


def row_value(row: ImageView, field: Field, *, full: bool, now: float) -> str:
    """A cell of ``image list``."""
    match field:
        case Field.ID:
            return row.id if full else row.short_id
        case Field.NAME:
            return row.reference
        case Field.DIGEST:
            return (row.digest if full else row.digest[:19]) or "-"
        case Field.SHARED | Field.OWN:
            return human_size(row.shared_size if field is Field.SHARED else row.own_size)
        case Field.SIZE:
            return human_size(row.size)
        case Field.IMPORTTIME:
            return ago(row.import_time, now)
        case Field.LASTUSED:
            return ago(row.last_used, now)
        case Field.LATEST:
            return str(row.latest).lower()
        case Field.SIGNER:
            return row.signer or "-"
        case Field.SOURCE:
            return row.source


def sort_key(row: ImageView, field: Field) -> str | float:
    keys: dict[Field, str | float] = {
        Field.ID: row.id,
        Field.NAME: row.name,
        Field.SIZE: row.size,
        Field.IMPORTTIME: row.import_time,
        Field.LASTUSED: row.last_used,
        Field.LATEST: row.latest,
        Field.SIGNER: row.signer or "",
        Field.SOURCE: row.source,
        Field.DIGEST: row.digest,
        Field.SHARED: 0,
        Field.OWN: 0,
    }
    return keys[field]


def table(rows: list[list[str]], legend: list[str] | None) -> str:
    lines = ([legend] if legend else []) + rows
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n" for line in lines
    )


def moment(when: float | None, *, full: bool) -> str:
    """A time in a table: "5 minutes ago", or the local date and time with ``--full``."""
    if when is None:
        return "-"
    if full:
        return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(when))
    return ago(when, time.time())
