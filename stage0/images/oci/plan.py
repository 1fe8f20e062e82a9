"""What an OCI image's config asks of a pod that appc has no word for, planned with the rest
(stage0/pods/planner.py): its StopSignal, and empty volumes for its Volumes."""

from __future__ import annotations

import dataclasses
import signal
from typing import TYPE_CHECKING

from stage0.images.oci.convert import ENTRYPOINT, OCI_ANNOTATION
from stage0.schema.image import ImageManifest
from stage1.abi import AppSpec, VolumeSpec

if TYPE_CHECKING:
    from stage0.images.tree import PlannedImage


def stop_signal(value: str | None) -> str:
    """An OCI image's StopSignal (``SIGQUIT``, ``QUIT`` or a number) as systemd's KillSignal=."""
    if not value:
        return ""
    name = value.upper() if value.upper().startswith("SIG") else f"SIG{value.upper()}"
    if value.isdigit():
        return value if 0 < int(value) < 65 else ""
    return name if name.removeprefix("SIG").isalnum() and hasattr(signal, name) else ""


def oci_volumes(
    apps: list[AppSpec], images: list[PlannedImage], volumes: tuple[VolumeSpec, ...]
) -> tuple[list[AppSpec], tuple[VolumeSpec, ...]]:
    """An OCI image's Volumes the pod gives nothing for: empty volumes of their own, as docker
    makes them (owned as the image's directory is, else by the app's user)."""
    planned, added = [], list(volumes)
    for app, image in zip(apps, images, strict=True):
        declared = image.manifest.app.mount_points if image.manifest.app else ()
        if image.manifest.annotation(OCI_ANNOTATION) != "true" or not declared:
            planned.append(app)
            continue
        mounted = {path for _, path, _ in app.mounts}
        mounts = list(app.mounts)
        for point in declared:
            if str(point.path) in mounted:
                continue
            owner = image.tree.owner(str(point.path)) or (app.user, app.group)
            name = f"{app.name}-{point.name}"
            added.append(VolumeSpec(name=name, kind="empty", uid=owner[0], gid=owner[1]))
            mounts.append((name, str(point.path), False))
        planned.append(dataclasses.replace(app, mounts=tuple(mounts)))
    return planned, tuple(added)


def oci_argv(manifest: ImageManifest, exec_: str | None, args: tuple[str, ...] | None) -> list[str] | None:
    """Arguments given to an OCI image replace its Cmd and keep its Entrypoint, as docker's do
    (``--exec`` replaces the Entrypoint and drops the Cmd); None when appc's rule applies."""
    length = manifest.annotation(ENTRYPOINT)
    if exec_ is not None or args is None or not length or not length.isdigit() or not manifest.app:
        return None
    return [*list(manifest.app.exec)[: int(length)], *args] or None
