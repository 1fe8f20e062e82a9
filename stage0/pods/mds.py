"""The appc metadata service (``nspod metadata-service``): application identity for pods.

stage1 registers each pod as it starts, over a root-only unix socket: its UUID, machine name, the
addresses it speaks from, a secret token (256 bits, not the UUID), its manifest and its apps'
image manifests. An app reaches the service at ``AC_METADATA_URL`` (``http://HOST:18112/TOKEN``,
HOST: the host's end of the pod's first network) and gets answers only when both the token and
the address it speaks from are its pod's. Pods are dropped when machined says their machine went
away (stage0/host/machined.py), or when stage1 asks; a restarted service registers the running ones
again from what their stage1 kept (:func:`restore`). Signatures are HMAC-SHA512 over the signer's UUID
bytes and the content, with a key made at service start (so, as rkt's, they do not outlive it).

Served (appc spec, ace.md "App Container Metadata Service"), under ``/TOKEN/acMetadata/v1``::

    GET  /pod/annotations  /pod/manifest  /pod/uuid
    GET  /apps/NAME/annotations  /apps/NAME/image/manifest  /apps/NAME/image/id
    POST /pod/hmac/sign (content=…)   /pod/hmac/verify (content=…&uuid=…&signature=…)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Pod:
    uuid: str
    machine: str
    token: str
    addresses: frozenset[str]
    manifest: dict[str, Any]
    images: dict[str, dict[str, Any]]  # app name -> its image manifest


def canonical(address: str) -> str:
    """An address as compared: IPv4-mapped IPv6 (a dual-stack listener's view) as IPv4."""
    try:
        parsed = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped:
        return str(parsed.ipv4_mapped)
    return str(parsed)


@dataclass
class Registry:
    pods: dict[str, Pod] = field(default_factory=dict)  # by token

    def register(self, pod: Pod) -> None:
        self.drop(pod.uuid)
        self.pods[pod.token] = pod

    def drop(self, uuid: str) -> None:
        for token in [t for t, p in self.pods.items() if p.uuid == uuid]:
            del self.pods[token]

    def drop_machine(self, machine: str) -> None:
        for token in [t for t, p in self.pods.items() if p.machine == machine]:
            del self.pods[token]

    def find(self, token: str, source: str) -> Pod | None:
        """The pod this token names, if the request comes from one of its addresses."""
        pod = self.pods.get(token)
        if pod is None or canonical(source) not in pod.addresses:
            return None
        return pod


def registration(uuid: str, data: Any) -> Pod:
    """A pod from what stage1 sends (stage1/mds.py register); ValueError and friends when it is bad."""
    pod = Pod(
        uuid=str(uuidlib.UUID(uuid)),
        machine=str(data["machine"]),
        token=str(data["token"]),
        addresses=frozenset(canonical(a) for a in data["addresses"]),
        manifest=dict(data["manifest"]),
        images={str(k): dict(v) for k, v in data["images"].items()},
    )
    if len(pod.token) < 32:  # ≥ 128 bits as hex
        raise ValueError("the token is too short")
    return pod


def restore(registry: Registry, machines: list[tuple[str, str]]) -> list[str]:
    """Register again the running pods a restarted service lost (#23 item 22): ``machines``,
    machined's (name, root directory), each an nspod pod whose root is ``POD/stage1/rootfs``
    and whose stage1 kept what it registered there (``mds-registration.json``, root's). A
    machine that is no pod of ours, or whose record names another machine, is passed by."""
    restored = []
    for machine, root in machines:
        pod_dir = os.path.dirname(os.path.dirname(os.path.normpath(root)))
        try:
            with open(os.path.join(pod_dir, "mds-registration.json")) as file:
                data = json.load(file)
            pod = registration(os.path.basename(pod_dir), data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if pod.machine == machine and data.get("uuid") == pod.uuid:
            registry.register(pod)
            restored.append(pod.uuid)
    return restored


class Signer:
    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or os.urandom(64)

    def sign(self, uuid: str, content: str) -> str:
        mac = hmac.new(self.key, uuidlib.UUID(uuid).bytes + content.encode(), hashlib.sha512)
        return base64.b64encode(mac.digest()).decode()

    def verify(self, uuid: str, content: str, signature: str) -> bool:
        try:
            given = base64.b64decode(signature, validate=True)
            expected = base64.b64decode(self.sign(uuid, content))
        except (ValueError, binascii.Error):
            return False
        return hmac.compare_digest(given, expected)


def app_annotations(image: dict[str, Any], app: dict[str, Any]) -> list[dict[str, str]]:
    """appc's merge: the image's annotations in order, each replaced by the pod app's of the same
    name (case-insensitive), the pod app's others appended."""
    merged = [dict(a) for a in image.get("annotations") or []]
    for annotation in app.get("annotations") or []:
        same = next((m for m in merged if m["name"].lower() == annotation["name"].lower()), None)
        if same is None:
            merged.append(dict(annotation))
        else:
            same["value"] = annotation["value"]
    return merged


def _text(value: str) -> web.Response:
    return web.Response(text=value, content_type="text/plain", charset="us-ascii")


def _json(value: object) -> web.Response:
    return web.Response(body=json.dumps(value).encode(), content_type=JSON)


class Service:
    """The two aiohttp applications: the pods' (public) and stage1's (registration)."""

    def __init__(self, registry: Registry | None = None, signer: Signer | None = None) -> None:
        self.registry = registry or Registry()
        self.signer = signer or Signer()

    def public(self) -> web.Application:
        app = web.Application()
        base = "/{token}/acMetadata/v1"
        app.router.add_get(base + "/pod/annotations", self.pod_annotations)
        app.router.add_get(base + "/pod/manifest", self.pod_manifest)
        app.router.add_get(base + "/pod/uuid", self.pod_uuid)
        app.router.add_get(base + "/apps/{app}/annotations", self.app_annotations)
        app.router.add_get(base + "/apps/{app}/image/manifest", self.image_manifest)
        app.router.add_get(base + "/apps/{app}/image/id", self.image_id)
        app.router.add_post(base + "/pod/hmac/sign", self.sign)
        app.router.add_post(base + "/pod/hmac/verify", self.verify)
        return app

    def registration(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/pods", self.listing)
        app.router.add_put("/pods/{uuid}", self.register)
        app.router.add_delete("/pods/{uuid}", self.unregister)
        return app

    # -- the pods' side ----------------------------------------------------------------------

    def _pod(self, request: web.Request) -> Pod:
        pod = self.registry.find(request.match_info["token"], request.remote or "")
        if pod is None:  # one answer for a wrong token and a wrong address: nothing to probe
            raise web.HTTPForbidden(text="not a registered pod's token and address\n")
        return pod

    def _app(self, request: web.Request) -> tuple[Pod, dict[str, Any]]:
        pod = self._pod(request)
        name = request.match_info["app"]
        app = next((a for a in pod.manifest.get("apps", []) if a.get("name") == name), None)
        if app is None:
            raise web.HTTPNotFound(text=f"the pod has no app {name}\n")
        return pod, app

    async def pod_annotations(self, request: web.Request) -> web.Response:
        return _json(self._pod(request).manifest.get("annotations"))

    async def pod_manifest(self, request: web.Request) -> web.Response:
        return _json(self._pod(request).manifest)

    async def pod_uuid(self, request: web.Request) -> web.Response:
        return _text(self._pod(request).uuid)

    async def app_annotations(self, request: web.Request) -> web.Response:
        pod, app = self._app(request)
        return _json(app_annotations(pod.images.get(app["name"], {}), app))

    async def image_manifest(self, request: web.Request) -> web.Response:
        pod, app = self._app(request)
        return _json(pod.images.get(app["name"], {}))

    async def image_id(self, request: web.Request) -> web.Response:
        _, app = self._app(request)
        return _text(str(app.get("image", {}).get("id", "")))

    async def sign(self, request: web.Request) -> web.Response:
        pod = self._pod(request)
        form = await request.post()
        content = form.get("content")
        if not isinstance(content, str):
            raise web.HTTPBadRequest(text="content= is missing\n")
        return _text(self.signer.sign(pod.uuid, content))

    async def verify(self, request: web.Request) -> web.Response:
        self._pod(request)  # only pods verify, any pod's signature
        form = await request.post()
        values = [form.get(k) for k in ("uuid", "content", "signature")]
        if not all(isinstance(v, str) for v in values):
            raise web.HTTPBadRequest(text="uuid=, content= and signature= are needed\n")
        uuid, content, signature = (str(v) for v in values)
        try:
            valid = self.signer.verify(uuid, content, signature)
        except ValueError:  # not a UUID
            valid = False
        if not valid:
            raise web.HTTPForbidden(text="signature does not verify\n")
        return _text("")

    # -- stage1's side -----------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        try:
            pod = registration(request.match_info["uuid"], await request.json())
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise web.HTTPBadRequest(text=f"bad registration: {error}\n") from None
        self.registry.register(pod)
        return web.Response(status=204)

    async def listing(self, request: web.Request) -> web.Response:
        """The registered pods (no tokens): for administrators and tests."""
        return _json(
            sorted(
                ({"uuid": p.uuid, "machine": p.machine} for p in self.registry.pods.values()),
                key=lambda p: p["uuid"],
            )
        )

    async def unregister(self, request: web.Request) -> web.Response:
        self.registry.drop(request.match_info["uuid"])
        return web.Response(status=204)
