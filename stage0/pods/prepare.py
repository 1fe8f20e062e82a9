"""Preparing a pod, the thin orchestration: fetch each image, render it, plan the pod
(stage0/pods/planner.py, pure), check what only the host can tell, and write the pod's files."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from stage0.errors import space_on
from stage0.host.atomic import write_atomic
from stage0.images.fetch.fetcher import Fetcher
from stage0.images.render import rendered_rootfs
from stage0.images.store.store import ImageNotFound
from stage0.images.tree import ImageTree, LayeredTree, PlannedImage, RootfsTree
from stage0.pods.planner import PrepareError, plan_pod
from stage0.pods.requests import PodRequest
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.pod import PodManifest
from stage1.abi import NetworkSpec, PodPaths, PodSpec

SELINUX = "/sys/fs/selinux/enforce"


@dataclass(frozen=True, slots=True)
class BuiltPod:
    spec: PodSpec
    manifest: PodManifest  # for cat-manifest and the metadata service
    image_ids: list[str]
    image_manifests: dict[str, bytes]  # each app's image manifest, as stored (the metadata service's)


def build_pod(
    uuid: str, request: PodRequest, fetcher: Fetcher, networks: tuple[NetworkSpec, ...] | None
) -> BuiltPod:
    """The pod, fetching images as needed; ``networks``: the nets it joins (None: the host's)."""
    images, raws = [], []
    for app in request.apps:
        row = fetcher.fetch(app.image, signature=app.signature)
        if not fetcher.store.hold(row.id):  # held until the pod lists it: 'image rm' waits, then refuses
            raise ImageNotFound(
                f"image {row.short_id} ({row.name}) was removed while the pod was prepared",
                hint="run the command again",
            )
        raws.append(bytes(row.manifest))
        image = parse_image_manifest(row.manifest, row.name, trusted=True)
        layers = fetcher.store.oci_layers(row.id)  # an OCI image: its layers, stacked by stage1
        tree: ImageTree = (
            LayeredTree(layers)
            if layers
            else RootfsTree(rendered_rootfs(fetcher.store, row, fetcher.resolve_dependency))
        )
        images.append(PlannedImage(row.name, row.id, row.labels, image, tree))
    fetcher.store.mark_used(image.id for image in images)
    spec, manifest = plan_pod(uuid, request, images, networks)
    labelled = [a.name for a in spec.apps if a.selinux_context]
    if labelled and not os.path.exists(SELINUX):  # appc: applied where SELinux is; said once where not
        print(
            f"nspod: warning: SELinux is not enabled; the context of {', '.join(labelled)} is not applied",
            file=sys.stderr,
        )
    for volume in spec.volumes:  # appc: a missing host source is an error; nspod creates no host paths
        if volume.kind == "host" and not os.path.isdir(volume.source):
            raise PrepareError(
                f"volume {volume.name}: host directory {volume.source} does not exist",
                hint="create it first; nspod does not create host paths",
            )
    manifests = {app.name: raw for app, raw in zip(spec.apps, raws, strict=True)}
    return BuiltPod(spec, manifest, [image.id for image in images], manifests)


def write_pod(path: str, pod: BuiltPod) -> None:
    paths = PodPaths(path)
    files = [
        (paths.spec, pod.spec.to_json().encode()),
        (paths.manifest, (json.dumps(pod.manifest.to_json(), indent=2) + "\n").encode()),
        (paths.images, "".join(i + "\n" for i in pod.image_ids).encode()),
    ]
    files += [(paths.image_manifest(app), raw) for app, raw in pod.image_manifests.items()]
    with space_on(os.path.dirname(os.path.dirname(path))):  # pods/: the half-made pod goes (Pods.create)
        for target, data in files:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_atomic(target, data, sync=False)
