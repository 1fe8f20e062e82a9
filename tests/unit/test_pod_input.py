"""--pod-manifest (issue #12, item 6): an appc pod manifest as the request, planned as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stage0.errors import UsageError
from stage0.pods.manifest_input import pod_request
from stage0.pods.planner import plan_pod
from stage0.schema.boundary import parse_pod_manifest
from tests.conftest import run_nspod
from tests.unit.test_planner import ID, SERVER, UUID, image

APP = {"exec": ["/bin/server", "--from-pod"], "user": "0", "group": "0",
       "environment": [{"name": "MODE", "value": "pod"}], "workingDirectory": "/srv",
       "eventHandlers": [{"name": "pre-start", "exec": ["/bin/sh", "-c", "true"]}]}  # fmt: skip


VERSION = {"name": "version", "value": "1.0"}


def manifest(**extra: Any) -> dict[str, Any]:
    return {
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": [
            {"name": "main", "image": {"id": ID, "name": "example.com/web"}, "app": APP,
             "mounts": [{"volume": "database", "path": "/db"}], "readOnlyRootFS": True,
             "annotations": [{"name": "lorem", "value": "dolor"}]},
            {"name": "side", "image": {"name": "example.com/web", "labels": [VERSION]},
             "mounts": [{"volume": "scratch", "path": "/tmp/x",
                         "appVolume": {"name": "scratch", "kind": "empty", "mode": "1777"}}]},
        ],
        "volumes": [{"name": "database", "kind": "empty", "mode": "0700", "uid": 5}],
        "annotations": [{"name": "purpose", "value": "ace-validation"}],
        **extra,
    }  # fmt: skip


def request_of(data: dict[str, Any]) -> Any:
    return pod_request(parse_pod_manifest(json.dumps(data).encode(), "pod.json"), "pod.json")


def test_apps_images_volumes_and_annotations_come_from_the_manifest() -> None:
    request = request_of(manifest())
    main, side = request.apps
    assert (main.image, side.image) == (ID, "example.com/web,version=1.0")
    assert main.mounts == (("database", "/db", False),) and main.read_only_rootfs is True
    assert [(v.name, v.mode, v.uid) for v in request.volumes] == [
        ("database", 0o700, 5),
        ("scratch", 0o1777, 0),
    ]
    assert request.annotations == (("purpose", "ace-validation"),) and main.annotations == (
        ("lorem", "dolor"),
    )


def test_the_manifests_app_replaces_the_images() -> None:
    request = request_of(manifest())
    spec, planned = plan_pod(UUID, request, [image(SERVER), image(SERVER)])
    main = spec.apps[0]
    assert main.exec == ("/bin/server", "--from-pod") and dict(main.env)["MODE"] == "pod"
    assert (main.working_directory, main.pre_start) == ("/srv", (("/bin/sh", "-c", "true"),))
    assert spec.apps[1].exec == ("/bin/server", "--port=80")  # the image's own
    out = planned.to_json()
    assert out["apps"][0]["annotations"] == [{"name": "lorem", "value": "dolor"}]
    assert out["annotations"][0] == {"name": "purpose", "value": "ace-validation"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {
                "ports": [
                    {
                        "name": "www",
                        "hostPort": 8080,
                        "podPort": {"name": "www", "protocol": "tcp", "port": 80},
                    }
                ]
            },
            "a podPort of the pod's own is not supported",
        ),
        (
            {"isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}]},
            "pod-level isolator resource/memory",
        ),
    ],
)
def test_what_nspod_cannot_honour_is_refused(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        request_of(manifest(**extra))


def test_unknown_pod_isolators_are_ignored() -> None:
    request_of(manifest(isolators=[{"name": "example.com/whatever", "value": {}}]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["img.aci"], "--pod-manifest and IMAGE both say what the pod holds"),
        (["--volume=x,kind=empty"], "--pod-manifest and --volume both say what the pod holds"),
    ],
)
def test_the_manifest_alone_says_what_the_pod_holds(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(manifest()))
    flags = [a for a in args if a.startswith("--")]
    images = [a for a in args if not a.startswith("--")]
    ran = run_nspod("--dir", str(tmp_path / "d"), "prepare", *flags, f"--pod-manifest={path}", *images)
    assert ran.returncode == 2 and message in ran.stderr, ran.stderr


def test_a_bad_manifest_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "pod.json"
    path.write_text(json.dumps({**manifest(), "apps": [{"name": "BAD", "image": {"id": ID}}]}))
    ran = run_nspod("--dir", str(tmp_path / "d"), "prepare", f"--pod-manifest={path}")
    assert ran.returncode == 254 and str(path) in ran.stderr and "/apps/0/name" in ran.stderr, ran.stderr
