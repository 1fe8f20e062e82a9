"""``run --pod-manifest FILE`` and ``prepare --pod-manifest FILE`` (rkt's): a whole appc pod
manifest as the request, so a pod written for another executor (the ACE validator's own) runs as
written — its apps by image ID (or name and labels), each app's ``app`` replacing its image's,
mounts (inline ``appVolume``s too), read-only roots, volumes and annotations.

Exposed ports are forwarded as ``--port`` would (by the app port's name). What nspod cannot honour
is refused, not dropped: a ``podPort`` defined by the pod rather than an app, and pod-level
isolators of kinds nspod knows (appc lets an executor ignore unknown ones, and nspod does).
"""

from __future__ import annotations

from stage0.errors import UsageError
from stage0.pods.network import PortRequest
from stage0.pods.requests import AppRequest, PodRequest
from stage0.schema.isolators import KINDS
from stage0.schema.pod import PodManifest, RuntimeImage, Volume
from stage1.abi import VolumeSpec


def image_ref(image: RuntimeImage) -> str:
    """The image as nspod finds it: by ID, else by name and labels (``name,label=value``)."""
    if image.id:
        return str(image.id)
    if not image.name:
        raise UsageError("a pod manifest app names no image", hint="give each app's image an id or a name")
    return ",".join([str(image.name), *(f"{label.name}={label.value}" for label in image.labels)])


def volume_spec(volume: Volume) -> VolumeSpec:
    if volume.kind == "host":
        return VolumeSpec(
            name=str(volume.name), kind="host", source=str(volume.source), read_only=volume.read_only
        )
    return VolumeSpec(
        name=str(volume.name),
        kind="empty",
        read_only=volume.read_only,
        mode=int(volume.mode or "0755", 8),
        uid=volume.uid or 0,
        gid=volume.gid or 0,
    )


def pod_request(manifest: PodManifest, source: str) -> PodRequest:
    """The request ``manifest`` (read from ``source``) stands for."""
    if any(p.pod_port is not None for p in manifest.ports):
        raise UsageError(
            f"{source}: a podPort of the pod's own is not supported",
            hint="forward a port an app declares, by its name",
        )
    known = [str(i.name) for i in manifest.isolators if str(i.name) in KINDS]
    if known:
        raise UsageError(
            f"{source}: pod-level isolator {known[0]} is not supported", hint="set it on the apps"
        )
    volumes = {str(v.name): volume_spec(v) for v in manifest.volumes}
    apps = []
    for runtime in manifest.apps:
        for mount in runtime.mounts:  # an app's own inline volume joins the pod's
            if mount.app_volume is not None:
                volumes.setdefault(str(mount.volume), volume_spec(mount.app_volume))
        apps.append(
            AppRequest(
                image=image_ref(runtime.image),
                name=str(runtime.name),
                app=runtime.app,
                mounts=tuple(
                    (
                        str(m.volume),
                        str(m.path),
                        volumes[str(m.volume)].read_only if str(m.volume) in volumes else False,
                    )
                    for m in runtime.mounts
                ),
                read_only_rootfs=runtime.read_only_rootfs or None,
                annotations=tuple((str(a.name), a.value) for a in runtime.annotations),
            )
        )
    return PodRequest(
        apps=tuple(apps),
        volumes=tuple(volumes.values()),
        annotations=tuple((str(a.name), a.value) for a in manifest.annotations),
        ports=tuple(PortRequest(str(p.name), p.host_port, p.host_ip or "") for p in manifest.ports),
    )
