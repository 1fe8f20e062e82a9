"""A pod's registration with the metadata service (stage0/pods/mds.py, ``nspod metadata-service``):
a secret token made here, sent with what the service serves over its root-only unix socket, and
handed to the apps as ``AC_METADATA_URL``. HTTP over AF_UNIX with the standard library."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import secrets
import socket
import sys
from typing import Any

from stage1.abi import MDS_PORT, MDS_SOCKET, Error, PodPaths, PodSpec
from stage1.atomic import write_atomic
from stage1.cni import Attachment

TIMEOUT = 10.0  # the first registration starts the service (socket activation)


def _call(path: str, method: str, url: str, body: str = "") -> tuple[int, str]:
    """``method`` ``body`` (JSON) to ``url`` of the HTTP server on the Unix socket ``path``: its
    status and text. http.client (and the email package under it, ~10 ms of every command's
    start) is imported only here, by a pod that registers or unregisters."""
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(TIMEOUT)
            self.sock.connect(path)

    connection = UnixConnection("localhost", timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        connection.request(method, url, body or None, headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def host_address(spec: PodSpec, attachments: tuple[Attachment, ...]) -> str | None:
    """Where the pod reaches the host: its first network's gateway (IPv4 first); the host's
    loopback for a pod on the host's network; nowhere for one with loopback alone."""
    if spec.networks is None:
        return "127.0.0.1"
    gateways = [ipaddress.ip_address(g) for a in attachments for g in a.gateways()]
    gateways.sort(key=lambda g: g.version)
    return str(gateways[0]) if gateways else None


def pod_addresses(spec: PodSpec, attachments: tuple[Attachment, ...]) -> list[str]:
    return (
        ["127.0.0.1", "::1"] if spec.networks is None else [a for at in attachments for a in at.addresses()]
    )


def metadata_url(host: str, token: str) -> str:
    where = f"[{host}]" if ":" in host else host
    return f"http://{where}:{MDS_PORT}/{token}"


def _read(path: str) -> Any:
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def with_url(spec: PodSpec, url: str) -> PodSpec:
    apps = tuple(dataclasses.replace(a, env=(*a.env, ("AC_METADATA_URL", url))) for a in spec.apps)
    return dataclasses.replace(spec, apps=apps)


def registered_url(spec: PodSpec, paths: PodPaths) -> PodSpec:
    """The spec as the pod's apps run it: with their AC_METADATA_URL (``nspod enter`` gets it too)."""
    try:
        with open(paths.mds_url) as file:
            return with_url(spec, file.read().strip())
    except FileNotFoundError:
        return spec


def _write_secret(path: str, text: str) -> None:
    """A file root's alone (it holds the pod's token): the service, restarted, registers the pod
    again from it (stage0/pods/mds.py restore)."""
    write_atomic(path, text, mode=0o600)


def register(spec: PodSpec, paths: PodPaths, attachments: tuple[Attachment, ...]) -> PodSpec:
    """Register the pod and give its apps AC_METADATA_URL. ``spec.mds_register``: True, it must
    work; None, where the service's socket is; False, never."""
    if spec.mds_register is False:
        return spec
    host = host_address(spec, attachments)
    failure = None
    if host is None:
        failure = "the pod has no network that reaches the host"
    elif not os.path.exists(MDS_SOCKET):
        failure = f"no metadata service listens on {MDS_SOCKET}"
    if failure is None and host is not None:
        token = secrets.token_hex(32)
        body = {
            "token": token,
            "machine": spec.machine,
            "addresses": pod_addresses(spec, attachments),
            "manifest": _read(paths.manifest),
            "images": {app.name: _read(paths.image_manifest(app.name)) for app in spec.apps},
        }
        try:
            status, text = _call(MDS_SOCKET, "PUT", f"/pods/{spec.uuid}", json.dumps(body))
            if status != 204:
                failure = f"the metadata service refused the pod: {status} {text}"
        except OSError as error:
            failure = f"cannot reach the metadata service: {error}"
        if failure is None:
            url = metadata_url(host, token)
            _write_secret(paths.mds_registration, json.dumps({"uuid": spec.uuid, **body}))
            _write_secret(paths.mds_url, url + "\n")
            return with_url(spec, url)
    if spec.mds_register:
        raise Error(
            f"cannot register the pod with the metadata service: {failure}",
            hint="start it (systemctl start nspod-metadata-register.socket) or drop --mds-register",
        )
    if host is not None and os.path.exists(MDS_SOCKET):  # where one runs, a failure is worth a word
        print(f"nspod: warning: {failure}; the apps get no AC_METADATA_URL", file=sys.stderr)
    return spec


def unregister(spec: PodSpec, paths: PodPaths) -> None:
    """Drop the pod's registration (a pod with no machine, fly's: the service drops the others when
    machined says their machine went away), and the token with it. Best effort: a service not
    running has no registration to drop."""
    if not os.path.exists(paths.mds_registration):
        return
    with contextlib.suppress(OSError):
        _call(MDS_SOCKET, "DELETE", f"/pods/{spec.uuid}")
    for path in (paths.mds_url, paths.mds_registration):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
