"""What ``--format=json`` prints, one schema for every listing verb (``schema/schemas/output.json``):
full UUIDs and image IDs, RFC 3339 UTC times, apps as a list of objects, image name and version.

``--format`` is spelled ``text|json`` everywhere (``table`` is still taken for ``text``). Text says
the same values the same way (the schema's ``$comment``): ``key=value`` lines (``status``, ``app
status``) hold the JSON value (RFC 3339 UTC, null empty, true/false), and a verb that prints the pods
it made or acted on (``run --detach``, ``prepare``, ``app sandbox``, ``stop``, ``rm``) prints each
whole UUID, bare, on a line of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stage0.api.views import ImageView, NetView, PodView
    from stage0.images.fetch.policy import Report, Transfer

FORMATS = ("text", "json")


def output_format(text: str) -> str:
    """The ``--format`` value (argparse ``type``)."""
    value = "text" if text == "table" else text
    if value not in FORMATS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(FORMATS)})")
    return value


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        type=output_format,
        default="text",
        metavar="{text,json}",
        help="text for people (default), json for programs (schema: stage0/schema/schemas/output.json)",
    )


def rfc3339(when: float | None) -> str | None:
    return None if when is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def key_values(values: dict[str, Any]) -> str:
    """rkt's ``key=value`` lines (``status``, ``app status``), each value as JSON has it."""
    shown = {k: "" if v is None else str(v).lower() if isinstance(v, bool) else v for k, v in values.items()}
    return "".join(f"{key}={value}\n" for key, value in shown.items())


def pod_json(view: PodView) -> dict[str, Any]:
    """One pod as ``list`` shows it."""
    return {
        "uuid": view.uuid,
        "name": view.machine,
        "unit": view.unit,
        "state": str(view.state),
        "apps": [
            {
                "name": app.name,
                "image": {"name": app.image.name, "version": app.image.version, "id": app.image.id},
                "exit_code": app.exit_code,
                "signal": app.signal,
                "health": app.health.status if app.health else None,
            }
            for app in view.apps
        ],
        "networks": [
            {
                "name": net.name,
                "interface": net.interface,
                "addresses": list(net.addresses),
                "gateways": list(net.gateways),
            }
            for net in view.networks
        ],
        "created": rfc3339(view.created),
        "started": rfc3339(view.started),
    }


def networks_text(networks: tuple[NetView, ...]) -> str:
    """rkt's form: ``default:ip4=172.16.28.2``, comma-separated."""
    return ",".join(
        f"{net.name}:{'ip6' if ':' in address else 'ip4'}={address}"
        for net in networks
        for address in net.addresses
    )


def image_json(view: ImageView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "reference": view.reference,
        "digest": view.digest or None,
        "shared_size": view.shared_size,
        "own_size": view.own_size,
        "version": view.version,
        "labels": dict(view.labels),
        "size": view.size,
        "importtime": rfc3339(view.import_time),
        "lastused": rfc3339(view.last_used),
        "latest": view.latest,
        "signer": view.signer,
        "source": view.source,
    }


def stderr_report() -> Report:
    """What a fetch tells, on stderr: its lines, and a progress line when stderr is a terminal."""
    from stage0.images.fetch.policy import Report

    return Report(
        say=lambda text: print(text, file=sys.stderr), progress=draw if sys.stderr.isatty() else None
    )


def draw(transfer: Transfer) -> None:
    """One progress line, redrawn in place; a new line once the transfer is done."""
    if transfer.finished:
        sys.stderr.write("\n")
    elif transfer.layers:
        sys.stderr.write(f"\r  {transfer.done / 2**20:.1f} of {(transfer.total or 0) / 2**20:.1f} MiB")
    elif transfer.total:
        name, width = transfer.what.rsplit("/", 1)[-1][:40], 30
        filled = width * transfer.done // transfer.total
        bar = f"[{'#' * filled}{'.' * (width - filled)}]"
        sys.stderr.write(f"\r{name}: {bar} {transfer.done >> 20}/{transfer.total >> 20} MiB")
    else:
        sys.stderr.write(f"\r{transfer.what.rsplit('/', 1)[-1][:40]}: {transfer.done >> 20} MiB")
    sys.stderr.flush()


def dump(value: object) -> None:
    print(json.dumps(value, indent=2))
