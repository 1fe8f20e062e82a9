"""An OCI image config as an appc image manifest, so that everything after the fetch (the planner,
``cat-manifest``, pod manifests) treats OCI images and ACIs alike. What docker does with a config,
as far as appc can say it (rkt's docker2aci did the same, but squashed the layers; nspod keeps
them): Entrypoint+Cmd become exec, Env the environment, User the user and group (a name resolved
in the image by the planner; a user without a group gets its primary group, as docker does),
WorkingDir the working directory, ExposedPorts named ports ``<port>-<protocol>``, Volumes mount
points (empty volumes unless the pod gives one), Labels annotations, StopSignal an annotation
stage1 turns into the app's stop signal. Pure: the image's passwd is a lookup passed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stage0.images.oci.manifest import ImageConfig
from stage0.pods.health import oci_annotations

if TYPE_CHECKING:
    from stage0.images.store.rows import ImageRow

AC_VERSION = "0.8.11"
OCI_ANNOTATION = "nspod.io/oci"  # "true": volumes are empty by default, as docker's are
STOP_SIGNAL = "nspod.io/stop-signal"
DIGEST_ANNOTATION = "nspod.io/oci-manifest-digest"
ENTRYPOINT = "nspod.io/oci-entrypoint-length"  # how much of exec is Entrypoint (the rest is Cmd)
_ARCH = {"arm64": "aarch64", "386": "i386", "arm": "armv7l"}
_IDENTIFIER = re.compile(r"^[a-z0-9]+([-._~/][a-z0-9]+)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9.-]*$")


def ac_identifier(text: str) -> str:
    """``text`` as an AC identifier: lower case, runs of other characters as one ``-``."""
    lowered = re.sub(r"[^a-z0-9._~/]+", "-", text.lower())
    lowered = re.sub(r"([-._~/])[-._~/]+", r"\1", lowered).strip("-._~/")
    return lowered or "image"


def appc_arch(architecture: str, variant: str = "") -> str:
    if architecture == "arm" and variant == "v6":
        return "armv6l"
    return _ARCH.get(architecture, architecture)


def volume_name(path: str) -> str:
    """An AC name for a docker volume path (rkt's docker2aci: ``volume-`` and the path)."""
    return "volume-" + (re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root")


def split_user(user: str, primary_group: Callable[[str], str | None]) -> tuple[str, str]:
    """Docker's ``User`` as appc's user and group."""
    name, colon, group = user.partition(":")
    if not name:
        return "0", group or "0"
    if colon and group:
        return name, group
    return name, primary_group(name) or "0"


def image_manifest(
    config: ImageConfig,
    *,
    name: str,
    version: str,
    digest: str,
    primary_group: Callable[[str], str | None],
    variant: str = "",
) -> dict[str, Any]:
    """The appc image manifest (as JSON data) standing for an OCI image."""
    user, group = split_user(config.user, primary_group)
    app: dict[str, Any] = {"user": user, "group": group}
    exec_ = [*config.entrypoint, *config.cmd]
    if exec_:
        app["exec"] = exec_
    environment = [{"name": k, "value": v} for k, v in config.env if _ENV_NAME.match(k)]
    if environment:
        app["environment"] = environment
    if config.working_dir.startswith("/"):
        app["workingDirectory"] = config.working_dir
    if config.exposed_ports:
        app["ports"] = [
            {"name": f"{port}-{protocol}", "protocol": protocol, "port": port}
            for port, protocol in config.exposed_ports
        ]
    if config.volumes:
        app["mountPoints"] = [
            {"name": volume_name(path), "path": path, "readOnly": False}
            for path in config.volumes
            if path.startswith("/")
        ]
    annotations = [{"name": OCI_ANNOTATION, "value": "true"}, {"name": DIGEST_ANNOTATION, "value": digest}]
    annotations.append({"name": ENTRYPOINT, "value": str(len(config.entrypoint))})
    if config.stop_signal:
        annotations.append({"name": STOP_SIGNAL, "value": config.stop_signal})
    annotations += [{"name": k, "value": v} for k, v in config.labels if _IDENTIFIER.match(k)]
    if config.healthcheck:
        annotations += [{"name": k, "value": v} for k, v in oci_annotations(json.loads(config.healthcheck))]
    labels = [{"name": "version", "value": version}, {"name": "os", "value": config.os or "linux"}]
    labels.append({"name": "arch", "value": appc_arch(config.architecture, variant)})
    return {
        "acKind": "ImageManifest",
        "acVersion": AC_VERSION,
        "name": ac_identifier(name),
        "labels": labels,
        "app": app,
        "annotations": annotations,
    }


def oci_digest(row: ImageRow) -> str:
    """An OCI image's manifest digest, as its appc manifest records it ("" for an ACI)."""
    if not row.is_oci:
        return ""
    annotations = json.loads(row.manifest).get("annotations") or []
    return next((str(a["value"]) for a in annotations if a.get("name") == DIGEST_ANNOTATION), "")
