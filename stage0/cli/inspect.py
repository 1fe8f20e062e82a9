"""``nspod inspect POD|IMAGE...``: pods and images in full, as a JSON array in the order asked
(schema: stage0/schema/schemas/inspect.json, ``pod`` and ``image``). Each name is looked up as a
pod first (name, UUID or a unique prefix), then as an image, unless ``--type`` says which. Rendered
from the read model (stage0/api/views.py, stage0/api/inspect.py) alone."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from stage0.cli.output import rfc3339
from stage0.options import GlobalOptions

if TYPE_CHECKING:
    from stage0.api.inspect import PodDetails
    from stage0.api.views import ImageView
    from stage1.abi import AppSpec, PodSpec


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inspect = verbs.add_parser("inspect", help="show pods and images in full (JSON)")
    inspect.add_argument("names", nargs="+", metavar="POD|IMAGE", help="a pod's name or UUID, or an image")
    inspect.add_argument(
        "--type", choices=("auto", "pod", "image"), default="auto", help="what the names are (default: auto)"
    )
    inspect.add_argument(
        "--format", choices=("json",), default="json", help="json, the one format (kept for podman's habit)"
    )
    inspect.set_defaults(handler=run_inspect)


def run_inspect(options: GlobalOptions, args: argparse.Namespace) -> int:
    found = [lookup(options, name, args.type) for name in args.names]  # all found before any print
    sys.stdout.write(json.dumps(found, indent=2) + "\n")
    return 0


def lookup(options: GlobalOptions, name: str, kind: str) -> dict[str, Any]:
    from stage0.api.images import image_status
    from stage0.api.inspect import pod_details
    from stage0.cli.podlist import stage1_name
    from stage0.errors import Error, ErrorKind, NotFoundError, kind_of
    from stage0.pods.dirs import PodNotFound

    if kind != "image":
        try:
            details = pod_details(options, name)
            return pod_json(details, stage1_name(details.view.path))
        except PodNotFound:
            if kind == "pod":
                raise
    try:
        return image_json(image_status(options, name))
    except Error as error:
        if kind == "image" or kind_of(error) is not ErrorKind.NOT_FOUND:
            raise
    raise NotFoundError(f"no pod or image {name}", hint="see 'nspod list' and 'nspod image list'")


def _declared(spec: PodSpec | None, name: str) -> AppSpec | None:
    return next((a for a in spec.apps if a.name == name), None) if spec else None


def pod_json(details: PodDetails, flavor: str = "nspawn") -> dict[str, Any]:
    """``flavor``: the stage1 that prepared the pod (stage0/pods/flavor.py ``name``)."""
    from stage0.pods.dirs import PodState
    from stage0.pods.health import health_fields

    view, spec = details.view, details.spec
    return {
        "kind": "pod",
        "id": view.uuid,
        "name": view.machine,
        "state": str(view.state),
        "created": rfc3339(view.created),
        "started": rfc3339(view.started),
        "finished": rfc3339(details.finished),
        "unit": view.unit,
        "machine": view.machine,
        "hostname": spec.hostname if spec else None,
        "path": view.path,
        "stage1": {"abi": spec.abi if spec else None, "flavor": flavor},
        "apps": [
            {
                "name": app.name,
                "image": {"name": listed.image.name, "version": listed.image.version, "id": listed.image.id},
                "state": str(app.state),
                "exit_code": app.exit_code,
                "signal": app.signal,
                "started": rfc3339(app.started),
                "finished": rfc3339(app.exited),
                **health_fields(_declared(spec, app.name), listed.health, view.state is PodState.RUNNING),
            }
            for app, listed in zip(details.apps, view.apps, strict=True)
        ],
        "networks": [  # an exited pod's addresses went with it
            {
                "name": net.name,
                "interface": net.interface,
                "addresses": list(net.addresses),
                "gateways": list(net.gateways),
            }
            for net in (() if view.exited else view.networks)
        ],
        "ports": [
            {
                "name": port.name,
                "protocol": port.protocol,
                "port": port.port,
                "host_port": port.host_port,
                "host_ip": port.host_ip or None,
            }
            for port in details.ports
        ],
        "annotations": dict(spec.annotations) if spec else {},
    }


def image_json(view: ImageView) -> dict[str, Any]:
    names = [view.reference, f"{view.name}:{view.version}" if view.version else view.name, view.name]
    try:
        manifest = json.loads(view.manifest)
    except ValueError:
        manifest = None
    return {
        "kind": "image",
        "id": view.id,
        "names": list(dict.fromkeys(names)),
        "digest": view.digest or None,
        "oci": view.is_oci,
        "size": view.size,
        "created": rfc3339(view.import_time),  # when it entered the store
        "last_used": rfc3339(view.last_used),
        "labels": dict(view.labels),
        "signer": view.signer,
        "verified": view.signer is not None,  # fetched with a signature checked against a trusted key
        "source": view.source,
        "manifest": manifest,
    }
