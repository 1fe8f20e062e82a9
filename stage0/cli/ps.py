"""``nspod list`` and its alias ``ps``: the pods, in compact columns that fit a terminal (``--full``:
rkt's wide table), their names alone (``-q``), filtered (``--filter``) or formatted (``--format``).
A warm pool's spares (``nspod pool``'s and the CRI's) are not pods anyone made: left out but with
``--all``; an exited pod is shown without the addresses it had."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING

from stage0.cli.podlist import Row, Template, filters, list_format, stage1_name
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.api.views import PodView

# a spare's markers (stage0/pool/spares.py, stage0/cri/warm.py): being booted or ready; a taken
# one ("….taken") is a pod like any other
SPARE_MARKERS = ("pool.filling", "pool.ready", "cri.filling", "cri.ready")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for verb, what in (("list", "list pods"), ("ps", "list pods (podman's name for list)")):
        listing = verbs.add_parser(verb, help=what)
        listing.add_argument("--full", action="store_true", help="rkt's wide table")
        listing.add_argument("--no-legend", action="store_true", help="leave out the header line")
        listing.add_argument(
            "-q", "--quiet", action="store_true", help="each pod's name alone (its UUID when it has none)"
        )
        listing.add_argument("-a", "--all", action="store_true", help="the warm pool's spares too")
        listing.add_argument(
            "--filter",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="name=REGEX, state=STATE (or status=), id=UUID-PREFIX, image=NAME, label=KEY[=VALUE]; "
            "comma-separated or repeated (one key repeated: any of them; different keys: all)",
        )
        listing.add_argument(
            "--format",
            type=list_format,
            default="text",
            metavar="FORMAT",
            help="text (default), json (schema: stage0/schema/schemas/output.json), or a template "
            "such as '{{.Name}} {{.State}}' ('table ' first: with a header)",
        )
        listing.set_defaults(handler=run_list)


def run_list(options: GlobalOptions, args: argparse.Namespace) -> int:
    from stage0.api.pods import list_pods
    from stage0.errors import UsageError

    try:
        wanted = filters(args.filter)
    except argparse.ArgumentTypeError as error:
        raise UsageError(str(error), hint="e.g. --filter state=running,name=web") from None
    views = [_shown(v) for v in list_pods(options) if args.all or not is_spare(v.path)]
    names = _image_names(options, {a.image.id for v in views for a in v.apps if a.image.id})
    labelled = any(key == "label" for key in wanted.wanted)
    rows = [
        row
        for v in views
        if wanted.passes(
            row := Row(v, _images(v, names), _labels(v.path) if labelled else {}, stage1_name(v.path))
        )
    ]
    sys.stdout.write(render(rows, args, views))
    return 0


def render(rows: list[Row], args: argparse.Namespace, views: list[PodView]) -> str:
    from stage0.cli.format import table
    from stage0.cli.podlist import FLAVORED_LEGEND, LEGEND, compact_cells, flavored, handles

    now = time.time()
    if args.quiet:
        names = handles(views)  # of every pod listed: a name shared with a hidden pod is not its
        return "".join(names[r.view.uuid] + "\n" for r in rows)
    if args.format == "json":
        import json

        from stage0.cli.output import pod_json

        return json.dumps([{**pod_json(r.view), "stage1": r.stage1} for r in rows], indent=2) + "\n"
    if isinstance(args.format, Template):
        head = [args.format.header()] if args.format.table and not args.no_legend else []
        return "".join(line + "\n" for line in head + [args.format.render(r, now) for r in rows])
    if args.full:
        return table([_wide_cells(r) for r in rows], None if args.no_legend else WIDE_LEGEND)
    stage1 = flavored(rows)
    legend = FLAVORED_LEGEND if stage1 else LEGEND
    return table([compact_cells(r, now, stage1=stage1) for r in rows], None if args.no_legend else legend)


WIDE_LEGEND = [
    "UUID",
    "NAME",
    "UNIT",
    "APPS",
    "IMAGE NAME",
    "STATE",
    "STAGE1",
    "CREATED",
    "STARTED",
    "NETWORKS",
]


def _wide_cells(row: Row) -> list[str]:
    """rkt's columns (``list --full``), whole UUIDs and absolute times."""
    from stage0.cli.format import moment
    from stage0.cli.output import networks_text
    from stage0.cli.podlist import apps_text

    view = row.view
    return [
        view.uuid,
        view.machine or "-",
        view.unit or "-",
        apps_text(view) or "-",
        ",".join(row.images) or "-",
        str(view.state),
        row.stage1,
        moment(view.created, full=True),
        moment(view.started, full=True),
        networks_text(view.networks) or "-",
    ]


def _shown(view: PodView) -> PodView:
    """An exited pod without the addresses it had (another pod may hold them now)."""
    return dataclasses.replace(view, networks=()) if view.exited else view


def is_spare(pod_dir: str) -> bool:
    return any(os.path.exists(os.path.join(pod_dir, marker)) for marker in SPARE_MARKERS)


def _images(view: PodView, names: dict[str, str]) -> tuple[str, ...]:
    return tuple(
        names.get(a.image.id or "")
        or (f"{a.image.name}:{a.image.version}" if a.image.version else a.image.name)
        for a in view.apps
    )


def _labels(pod_dir: str) -> dict[str, str]:
    """The pod's annotations (its labels, for ``--filter label=``), from its spec."""
    from stage1.abi import Error, PodPaths, PodSpec

    try:
        with open(PodPaths(pod_dir).spec) as file:
            return dict(PodSpec.from_json(file.read()).annotations)
    except (OSError, ValueError, Error):
        return {}


def _image_names(options: GlobalOptions, ids: set[str]) -> dict[str, str]:
    """Each stored image's name as ``image list`` shows it (an OCI image's REGISTRY/REPO:TAG), read
    without writing (list is a reader's verb); an image no longer stored keeps its manifest's."""
    import sqlite3

    from stage0.images.catalog import display_name
    from stage0.images.store.index import Index, StoreError

    path = os.path.join(options.dir, "images", "index.db")
    if not ids or not os.access(path, os.R_OK):
        return {}
    try:
        index = Index(path, read_only=True)
    except StoreError:
        return {}
    try:
        return {i: display_name(row) for i in ids if (row := index.image(i)) is not None}
    except sqlite3.Error:  # a listing does without the store's names rather than fail
        return {}
    finally:
        index.close()
