"""What ``nspod list`` (and ``ps``) shows, as pure functions of the read model: the compact columns,
``-q``'s names, ``--filter`` (podman's keys) and ``--format`` (json, or a Go-template-like line of
``{{.Field}}``s). The verb (stage0/cli/ps.py) reads the pods and prints what these return."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from stage0.api.views import PodView
from stage0.cli.output import networks_text, rfc3339
from stage0.pods.dirs import PodState

# the compact table's image cell at its widest (the name is never cut: it is what other verbs take;
# nor are the apps, the last column, whose exit codes and signals matter whole)
IMAGE_WIDTH = 18
STAGE1_WIDTH = 14  # a third-party stage1's path, cut at its start as the image is


@dataclass(frozen=True, slots=True)
class Row:
    """A listed pod: its view, each app's image as ``image list`` names it, its labels, and the
    stage1 that prepared it (``nspawn``, ``fly`` or a third-party stage1's path, issue #25)."""

    view: PodView
    images: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    stage1: str = "nspawn"


def named(view: PodView) -> str | None:
    """The pod's own name; None for a pod named for its UUID (``nspod-UUID``)."""
    return None if view.machine in (None, f"nspod-{view.uuid}") else view.machine


def handles(views: Sequence[PodView]) -> dict[str, str]:
    """UUID → the name ``-q`` prints for it: its own name when that name finds this very pod (as
    ``Pods.find`` picks among pods of one name: the running one, else the newest), else its UUID."""
    chosen: dict[str, PodView] = {}
    for view in views:  # in Pods.all()'s order, as find sees them: the last of a name wins
        name = named(view)
        if name is None:
            continue
        held = chosen.get(name)
        if held is None or view.state is PodState.RUNNING or held.state is not PodState.RUNNING:
            chosen[name] = view
    return {v.uuid: n if (n := named(v)) and chosen[n].uuid == v.uuid else v.uuid for v in views}


def age(seconds: float) -> str:
    """``12s``, ``5m``, ``3h``, ``2d``: the compact table's CREATED."""
    whole = max(0, int(seconds))
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= length:
            return f"{whole // length}{unit}"
    return f"{whole}s"


def clip(text: str, width: int) -> str:
    """The end of ``text`` (an image's tag, an app list's last) within ``width``, ".." marking a cut."""
    return text if len(text) <= width else ".." + text[-(width - 2) :]


def app_cell(name: str, code: int | None, signal: str | None) -> str:
    """``web`` while it runs, ``web=0`` once it ended with that code, ``web=143(SIGTERM)`` by a signal."""
    if code is None:
        return name
    return f"{name}={code}" + (f"({signal})" if signal else "")


def apps_text(view: PodView) -> str:
    # a running app's health beside it, as podman's STATUS has it: web(healthy)
    running = view.state is PodState.RUNNING
    health = {
        a.name: f"({a.health.status})" for a in view.apps if a.health and a.exit_code is None and running
    }
    return ",".join(app_cell(a.name, a.exit_code, a.signal) + health.get(a.name, "") for a in view.apps)


def stage1_name(pod_dir: str) -> str:
    from stage0.pods.flavor import name, recorded

    return name(recorded(pod_dir) or "")


def ip(view: PodView) -> str:
    """The pod's first address (the CRI's pod IP); none once it exited (its address went with it)."""
    addresses = () if view.exited else view.addresses()
    return addresses[0] if addresses else ""


# --- --format: Go-template-like fields ---

FIELDS: dict[str, Callable[[Row, float], str]] = {
    "Name": lambda r, _: named(r.view) or r.view.uuid[:8],
    "ID": lambda r, _: r.view.uuid[:8],
    "UUID": lambda r, _: r.view.uuid,
    "State": lambda r, _: str(r.view.state),
    "Status": lambda r, _: str(r.view.state),
    "Image": lambda r, _: ",".join(r.images),
    "Apps": lambda r, _: apps_text(r.view),
    "Created": lambda r, now: age(now - r.view.created),
    "CreatedAt": lambda r, _: rfc3339(r.view.created) or "",
    "StartedAt": lambda r, _: rfc3339(r.view.started) or "",
    "IP": lambda r, _: ip(r.view),
    "Networks": lambda r, _: "" if r.view.exited else networks_text(r.view.networks),
    "Unit": lambda r, _: r.view.unit or "",
    "Machine": lambda r, _: r.view.machine or "",
    "Stage1": lambda r, _: r.stage1,  # nspawn, fly, or a stage1's path (issue #25)
}
_PLACEHOLDER = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[tuple[str, str], ...]  # (literal text, field name or "") in order
    table: bool  # "table …": a header line of the fields' names first

    def render(self, row: Row, now: float) -> str:
        return "".join(text + (FIELDS[name](row, now) if name else "") for text, name in self.parts)

    def header(self) -> str:
        return "".join(text + name.upper() for text, name in self.parts)


def template(text: str) -> Template:
    """``{{.Name}}\\t{{.State}}`` (``\\t`` and ``\\n`` as escapes; a ``table`` prefix adds a header);
    an unknown field or a stray brace is an argparse error (exit 2)."""
    table = text.startswith("table ")
    body = (text.removeprefix("table ") if table else text).replace("\\t", "\t").replace("\\n", "\n")
    parts, at = [], 0
    for match in _PLACEHOLDER.finditer(body):
        if match.group(1) not in FIELDS:
            raise argparse.ArgumentTypeError(
                f"unknown field {{{{.{match.group(1)}}}}} (fields: {', '.join(FIELDS)})"
            )
        parts.append((body[at : match.start()], match.group(1)))
        at = match.end()
    parts.append((body[at:], ""))
    if any("{{" in t or "}}" in t for t, _ in parts):
        raise argparse.ArgumentTypeError(f"bad template {text!r} (fields are written {{{{.Name}}}})")
    if len(parts) == 1:
        raise argparse.ArgumentTypeError(
            f"bad format {text!r} (text, json, or a template of {{{{.Field}}}}s)"
        )
    return Template(tuple(parts), table)


def list_format(text: str) -> str | Template:
    """``--format``'s value (argparse ``type``): "text", "json" or a :class:`Template`."""
    return "text" if text in ("text", "table") else "json" if text == "json" else template(text)


# --- --filter: podman's keys ---

KEYS = {"name": "name", "state": "state", "status": "state", "id": "id", "image": "image", "label": "label"}
STATES = {str(s) for s in PodState} | {str(s).replace(" ", "-") for s in PodState}


@dataclass(frozen=True, slots=True)
class Filters:
    """key → accepted values: a pod passes when, for every key given, one of its values matches
    (podman's rule: the same key repeated is an or, different keys an and)."""

    wanted: Mapping[str, tuple[str, ...]]

    def passes(self, row: Row) -> bool:
        return all(any(_match(key, value, row) for value in values) for key, values in self.wanted.items())


def filters(given: Sequence[str]) -> Filters:
    """``--filter`` values, each ``KEY=VALUE[,KEY=VALUE…]``; a bad one raises argparse's error."""
    wanted: dict[str, list[str]] = {}
    for text in given:
        for pair in text.split(","):
            key, eq, value = pair.partition("=")
            if key.strip() not in KEYS or not eq:
                raise argparse.ArgumentTypeError(
                    f"bad filter {pair!r} (KEY=VALUE with KEY one of {', '.join(KEYS)})"
                )
            key = KEYS[key.strip()]
            if key == "state" and value not in STATES:
                raise argparse.ArgumentTypeError(f"bad state {value!r} (one of {', '.join(sorted(STATES))})")
            if key == "name":
                try:
                    re.compile(value)
                except re.error as error:
                    raise argparse.ArgumentTypeError(f"bad name pattern {value!r}: {error}") from None
            wanted.setdefault(key, []).append(value)
    return Filters({k: tuple(v) for k, v in wanted.items()})


def _match(key: str, value: str, row: Row) -> bool:
    view = row.view
    match key:
        case "name":  # a regular expression, as podman's
            return re.search(value, named(view) or view.uuid) is not None
        case "state":
            return str(view.state) == value.replace("-", " ")
        case "id":
            return view.uuid.startswith(value.lower())
        case "image":
            return any(
                value in (shown, app.image.name, app.image.id)
                or (app.image.id or "").startswith(value)
                or shown.rsplit(":", 1)[0] == value
                for shown, app in zip(row.images, view.apps, strict=False)
            )
        case _:  # label: KEY or KEY=VALUE among the pod's annotations
            name, eq, wanted = value.partition("=")
            return name in row.labels and (not eq or row.labels[name] == wanted)


# --- the compact table ---

LEGEND = ["NAME", "IMAGE", "STATE", "CREATED", "IP", "APPS"]
# STAGE1 before APPS once a listed pod is not nspawn's: a list of default pods keeps its width (a
# 40-character name within 100 columns) and the columns scripts read
FLAVORED_LEGEND = [*LEGEND[:-1], "STAGE1", LEGEND[-1]]


def flavored(rows: Sequence[Row]) -> bool:
    return any(row.stage1 != "nspawn" for row in rows)


def compact_cells(row: Row, now: float, *, stage1: bool = False) -> list[str]:
    """The compact table's cells; ``stage1``: with the flavor's column (:data:`FLAVORED_LEGEND`)."""
    view = row.view
    cells = [
        named(view) or view.uuid[:8],
        clip(",".join(row.images), IMAGE_WIDTH) or "-",
        str(view.state),
        age(now - view.created),
        ip(view) or "-",
        apps_text(view) or "-",
    ]
    return [*cells[:-1], clip(row.stage1, STAGE1_WIDTH), cells[-1]] if stage1 else cells
