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
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stage0.images.store.rows import ImageRow
    from stage0.pods.dirs import Pod

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


def pod_apps(pod: Pod) -> list[dict[str, Any]]:
    """The pod's apps from its manifest, with their images and exit codes (a broken manifest: none)."""
    try:
        with open(pod.paths.manifest) as file:
            manifest = json.load(file)
        apps = manifest.get("apps", [])
        codes, signals = pod.app_status(), pod.app_signals()
        return [
            {
                "name": app["name"],
                "image": {
                    "name": app["image"]["name"],
                    "version": next(
                        (x["value"] for x in app["image"].get("labels", []) if x.get("name") == "version"),
                        None,
                    ),
                    "id": app["image"].get("id"),
                },
                "exit_code": codes.get(app["name"]),
                "signal": signals.get(app["name"]),
            }
            for app in apps
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []  # a pod whose manifest is broken (or gone) is still listed


def pod_networks(pod: Pod) -> list[dict[str, Any]]:
    """The nets the pod joined as stage1 recorded them (``net.json``, stage1/ABI.md)."""
    try:
        with open(pod.paths.net) as file:
            recorded = json.load(file)
        return [
            {
                "name": net["name"],
                "interface": net["interface"],
                "addresses": [ip["address"].split("/")[0] for ip in net["result"].get("ips", [])],
                "gateways": [ip["gateway"] for ip in net["result"].get("ips", []) if ip.get("gateway")],
            }
            for net in recorded
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def networks_text(networks: list[dict[str, Any]]) -> str:
    """rkt's form: ``default:ip4=172.16.28.2``, comma-separated."""
    return ",".join(
        f"{net['name']}:{'ip6' if ':' in address else 'ip4'}={address}"
        for net in networks
        for address in net["addresses"]
    )


def pod_json(pod: Pod) -> dict[str, Any]:
    """One pod as ``list`` shows it; raises FileNotFoundError when it vanished meanwhile."""
    return {
        "uuid": pod.uuid,
        "name": pod.machine(),
        "unit": pod.unit(),
        "state": str(pod.state()),
        "apps": pod_apps(pod),
        "networks": pod_networks(pod),
        "created": rfc3339(pod.created()),
        "started": rfc3339(pod.started()),
    }


def image_json(row: ImageRow, sharing: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    from stage0.cli.format import display_name
    from stage0.images.oci.convert import oci_digest

    shared, own = (sharing or {}).get(row.id, (0, row.size + row.tree_size))
    return {
        "id": row.id,
        "name": row.name,
        "reference": display_name(row),
        "digest": oci_digest(row) or None,
        "shared_size": shared,
        "own_size": own,
        "version": row.labels.get("version"),
        "labels": dict(row.labels),
        "size": row.size + row.tree_size,
        "importtime": rfc3339(row.import_time),
        "lastused": rfc3339(row.last_used),
        "latest": row.latest,
        "signer": row.signer,
        "source": row.source,
    }


def dump(value: object) -> None:
    print(json.dumps(value, indent=2))
