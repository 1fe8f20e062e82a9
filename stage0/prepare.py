"""Preparing a pod, the thin orchestration: fetch each image, render it, plan the pod
(stage0/planner.py, pure), check what only the host can tell, and write the pod's files."""

from __future__ import annotations

import json
import os
import sys

from stage0.fetch.fetcher import Fetcher
from stage0.image_tree import RootfsTree
from stage0.planner import PlannedImage, PrepareError, plan_pod
from stage0.render import rendered_rootfs
from stage0.requests import PodRequest
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.pod import PodManifest
from stage1.abi import PodPaths, PodSpec

SELINUX = "/sys/fs/selinux/enforce"


def build_pod(uuid: str, request: PodRequest, fetcher: Fetcher) -> tuple[PodSpec, PodManifest, list[str]]:
    """The pod spec, the appc PodManifest (for cat-manifest) and the image IDs, fetching as needed."""
    images = []
    for app in request.apps:
        row = fetcher.fetch(app.image, signature=app.signature)
        image = parse_image_manifest(row.manifest, row.name, trusted=True)
        tree = RootfsTree(rendered_rootfs(fetcher.store, row, fetcher.resolve_dependency))
        images.append(PlannedImage(row.name, row.id, row.labels, image, tree))
    spec, manifest = plan_pod(uuid, request, images)
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
    return spec, manifest, [image.id for image in images]


def write_pod(path: str, spec: PodSpec, manifest: PodManifest, image_ids: list[str]) -> None:
    paths = PodPaths(path)
    for target, text in (
        (paths.spec, spec.to_json()),
        (paths.manifest, json.dumps(manifest.to_json(), indent=2) + "\n"),
        (paths.images, "".join(i + "\n" for i in image_ids)),
    ):
        with open(target + ".tmp", "w") as file:
            file.write(text)
        os.replace(target + ".tmp", target)
