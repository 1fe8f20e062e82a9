"""The metadata service's rules (stage0/pods/mds.py), without sockets: who is answered, the appc
annotation merge, signatures across pods; and its HTTP surface through aiohttp's test client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from stage0.pods.mds import Pod, Registry, Service, Signer, app_annotations, canonical, restore

A = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
B = "1f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
MANIFEST = {
    "acKind": "PodManifest",
    "annotations": [{"name": "purpose", "value": "test"}],
    "apps": [
        {"name": "web", "image": {"id": "sha512-abc"}, "annotations": [{"name": "Lorem", "value": "dolor"}]}
    ],
}
IMAGE = {
    "name": "example.com/web",
    "annotations": [{"name": "lorem", "value": "ipsum"}, {"name": "x", "value": "1"}],
}


def pod(uuid: str, token: str, address: str = "127.0.0.1", machine: str = "web") -> Pod:
    return Pod(uuid, machine, token, frozenset({address}), MANIFEST, {"web": IMAGE})


def test_a_pod_is_found_by_its_token_from_its_own_address_only() -> None:
    registry = Registry()
    registry.register(pod(A, "t" * 64, "172.16.28.2"))
    assert registry.find("t" * 64, "::ffff:172.16.28.2") is not None  # a dual-stack listener's view
    assert registry.find("t" * 64, "172.16.28.3") is None
    assert registry.find("u" * 64, "172.16.28.2") is None
    registry.drop_machine("web")
    assert registry.find("t" * 64, "172.16.28.2") is None


def test_registering_again_replaces_the_old_token() -> None:
    registry = Registry()
    registry.register(pod(A, "t" * 64))
    registry.register(pod(A, "u" * 64))
    assert list(registry.pods) == ["u" * 64]


def test_canonical_addresses() -> None:
    assert canonical("::ffff:10.0.0.1") == "10.0.0.1" and canonical("fd00::0:2") == "fd00::2"


def test_annotations_merge_as_appc_says() -> None:
    assert app_annotations(
        IMAGE, {"annotations": [{"name": "LOREM", "value": "dolor"}, {"name": "y", "value": "2"}]}
    ) == [
        {"name": "lorem", "value": "dolor"},
        {"name": "x", "value": "1"},
        {"name": "y", "value": "2"},
    ]


def test_signatures_verify_for_the_signer_only() -> None:
    signer = Signer()
    signature = signer.sign(A, "content")
    assert signer.verify(A, "content", signature)
    assert not signer.verify(B, "content", signature)
    assert not signer.verify(A, "content!", signature)
    assert not signer.verify(A, "content", "not base64!")
    assert not Signer().verify(A, "content", signature)  # another service's key


async def _session(calls: list[tuple[str, str, Any]]) -> list[tuple[int, str, str]]:
    service = Service()
    service.registry.register(pod(A, "a" * 64))
    service.registry.register(pod(B, "b" * 64, "10.9.9.9"))  # not the test client's address
    results = []
    async with TestClient(TestServer(service.public())) as client:
        for method, path, data in calls:
            response = await client.request(method, path, data=data)
            results.append(
                (response.status, response.headers.get("Content-Type", ""), await response.text())
            )
    return results


def test_the_endpoints() -> None:
    base = "/" + "a" * 64 + "/acMetadata/v1"
    results = asyncio.run(
        _session(
            [
                ("GET", base + "/pod/uuid", None),
                ("GET", base + "/pod/manifest", None),
                ("GET", base + "/pod/annotations", None),
                ("GET", base + "/apps/web/annotations", None),
                ("GET", base + "/apps/web/image/id", None),
                ("GET", base + "/apps/web/image/manifest", None),
                ("GET", "/" + "b" * 64 + "/acMetadata/v1/pod/uuid", None),  # b's token, from a's address
                ("POST", base + "/pod/hmac/sign", {"content": "farm"}),
            ]
        )
    )
    assert results[0] == (200, "text/plain; charset=us-ascii", A)
    assert results[1][:2] == (200, "application/json") and json.loads(results[1][2]) == MANIFEST
    assert json.loads(results[2][2]) == MANIFEST["annotations"]
    assert json.loads(results[3][2])[0] == {"name": "lorem", "value": "dolor"}
    assert results[4][2] == "sha512-abc" and json.loads(results[5][2]) == IMAGE
    assert results[6][0] == 403
    signature = results[7][2]
    verified = asyncio.run(
        _session(
            [
                ("POST", base + "/pod/hmac/verify", {"uuid": A, "content": "farm", "signature": signature}),
            ]
        )
    )
    assert verified[0][0] == 403  # a new service, a new key: signatures do not outlive it


def test_a_restarted_service_restores_the_pods_machined_runs(tmp_path: Path) -> None:
    # #23 item 22: each running pod's stage1 kept its registration; machines that are no pod of
    # ours, or whose record names another machine or UUID, are passed by
    def pod_dir(uuid: str, machine: str, token: str, recorded_uuid: str | None = None) -> str:
        where = tmp_path / "pods/run" / uuid
        (where / "stage1/rootfs").mkdir(parents=True)
        record = {"uuid": recorded_uuid or uuid, "token": token, "machine": machine,
                  "addresses": ["172.16.28.5"], "manifest": MANIFEST, "images": {"web": IMAGE}}  # fmt: skip
        (where / "mds-registration.json").write_text(json.dumps(record))
        return str(where / "stage1/rootfs")

    registry = Registry()
    machines = [
        ("web", pod_dir(A, "web", "a" * 64)),
        ("other", pod_dir(B, "not-other", "b" * 64)),
        ("plain", str(tmp_path / "machines/plain")),
    ]
    assert restore(registry, machines) == [A]
    found = registry.find("a" * 64, "172.16.28.5")
    assert found is not None and found.uuid == A and found.machine == "web"
    assert registry.find("b" * 64, "172.16.28.5") is None
