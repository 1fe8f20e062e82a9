"""App sandboxes (``nspod app``): the pod's files as apps come and go while it runs.

An app is planned exactly as ``run`` plans one (stage0/prepare.py build_pod, the same planner),
with the pod-wide settings the sandbox was made with (``sandbox.json``: env, mounts for every
app, the parts of the profile lifted), then appended to the pod's spec, manifest and image list;
removing one takes it out again. Every change happens under the pod's ``apps.lock`` and replaces
each file whole, and a failed ``add`` puts the old files back: nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from stage0.errors import Error, UsageError
from stage0.pods import Pod, PodState
from stage0.store.locks import locked
from stage1.abi import PodSpec, VolumeSpec

if TYPE_CHECKING:
    from stage0.fetch.fetcher import Fetcher
    from stage0.requests import AppRequest, PodRequest

SETTINGS = "sandbox.json"


def save_settings(pod_dir: str, request: PodRequest) -> None:
    """The pod-wide settings later apps are planned with (the sandbox has no apps to carry them)."""
    _replace(os.path.join(pod_dir, SETTINGS), json.dumps(_settings_of(request), indent=2).encode())


def _settings_of(request: PodRequest) -> dict[str, Any]:
    return {
        "set_env": request.set_env,
        "env_file": request.env_file,
        "inherit_env": dict(request.inherit_env),
        "mounts": request.mounts,
        "relaxed": request.relaxed,
    }


def sandbox_spec(pod: Pod) -> PodSpec:
    """The spec of a running app sandbox; a clear error for any other pod."""
    try:
        with open(pod.paths.spec) as file:
            spec = PodSpec.from_json(file.read())
    except (OSError, ValueError) as error:
        raise Error(f"cannot read the spec of pod {pod.uuid}: {error}") from None
    if not spec.sandbox:
        raise UsageError(
            f"pod {pod.uuid} is not an app sandbox",
            hint="apps come and go only in pods made by 'nspod app sandbox'",
        )
    if pod.state() is not PodState.RUNNING:
        raise Error(f"app sandbox {pod.uuid} is {pod.state()}", hint="apps join running sandboxes only")
    return spec


@contextlib.contextmanager
def changing(pod: Pod) -> Iterator[None]:
    """One change of the pod's apps at a time."""
    with locked(os.path.join(pod.path, "apps.lock")):
        yield


def plan_app(
    pod: Pod,
    spec: PodSpec,
    app: AppRequest,
    fetcher: Fetcher,
    base: PodRequest | None = None,
    volumes: tuple[VolumeSpec, ...] = (),
) -> tuple[str, list[tuple[str, bytes]]]:
    """The app's name and the pod's files with it added (fetched, rendered and planned like any
    pod's app), as (path, content) to write; the caller holds :func:`changing`. ``base``: the
    pod-wide settings to plan it with (a pooled run's own), else the sandbox's; with ``base`` the
    pod stops being a sandbox: it becomes the run's pod, which ends with its app. ``volumes``: pod
    volumes the app brings (a CRI container's host paths), added to the pod's."""
    from stage0.prepare import build_pod
    from stage0.requests import PodRequest
    from stage0.schema.boundary import parse_pod_manifest

    if spec.private_users is not None:
        raise UsageError(
            "apps cannot join a pod with its own user namespace yet",
            hint="make the sandbox without --private-users",
        )
    settings = _settings(pod) if base is None else _settings_of(base)
    request = PodRequest(
        apps=(app,),
        set_env=tuple(tuple(e) for e in settings.get("set_env", ())),
        env_file=tuple(tuple(e) for e in settings.get("env_file", ())),
        inherit_env=settings.get("inherit_env", {}),
        volumes=(*spec.volumes, *volumes),
        mounts=tuple((v, t, bool(ro)) for v, t, ro in settings.get("mounts", ())),
        relaxed=tuple(settings.get("relaxed", ())),
    )
    built = build_pod(spec.uuid, request, fetcher, None)
    new = built.spec.apps[0]
    if new.name in (a.name for a in spec.apps):
        raise UsageError(f"the pod already has an app {new.name!r}", hint="name this one with --name")
    volumes = (*spec.volumes, *(v for v in built.spec.volumes if v not in spec.volumes))
    with open(pod.paths.manifest, "rb") as file:
        manifest = parse_pod_manifest(file.read(), pod.paths.manifest)
    manifest = dataclasses.replace(
        manifest,
        apps=(*manifest.apps, *built.manifest.apps),
        volumes=(*manifest.volumes, *(v for v in built.manifest.volumes if v not in manifest.volumes)),
    )
    updated = dataclasses.replace(spec, apps=(*spec.apps, new), volumes=volumes, sandbox=base is None)
    return new.name, [
        (pod.paths.image_manifest(new.name), built.image_manifests[new.name]),
        (pod.paths.images, "".join(i + "\n" for i in [*pod.image_ids(), *built.image_ids]).encode()),
        (pod.paths.manifest, (json.dumps(manifest.to_json(), indent=2) + "\n").encode()),
        (pod.paths.spec, updated.to_json().encode()),
    ]


def drop_app(pod: Pod, spec: PodSpec, name: str) -> list[tuple[str, bytes]]:
    """The pod's files without app ``name`` (its stage1 part already undone)."""
    index = next(i for i, a in enumerate(spec.apps) if a.name == name)
    with open(pod.paths.manifest) as file:
        manifest: dict[str, Any] = json.load(file)
    manifest["apps"] = [a for a in manifest.get("apps", []) if a.get("name") != name]
    images = pod.image_ids()
    updated = dataclasses.replace(spec, apps=tuple(a for a in spec.apps if a.name != name))
    return [
        (pod.paths.images, "".join(i + "\n" for k, i in enumerate(images) if k != index).encode()),
        (pod.paths.manifest, (json.dumps(manifest, indent=2) + "\n").encode()),
        (pod.paths.spec, updated.to_json().encode()),
    ]


def remove_app_files(pod: Pod, name: str) -> None:
    shutil.rmtree(os.path.dirname(pod.paths.image_manifest(name)), ignore_errors=True)


@contextlib.contextmanager
def written(files: list[tuple[str, bytes]]) -> Iterator[None]:
    """Write ``files`` (each replaced whole); if the block fails, put back what was there."""
    before: list[tuple[str, bytes | None]] = []
    for path, _ in files:
        try:
            with open(path, "rb") as file:
                before.append((path, file.read()))
        except FileNotFoundError:
            before.append((path, None))
    try:
        for path, data in files:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _replace(path, data)
        yield
    except BaseException:
        for path, old in reversed(before):
            if old is None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                _replace(path, old)
        raise


def _settings(pod: Pod) -> dict[str, Any]:
    try:
        with open(os.path.join(pod.path, SETTINGS)) as file:
            value = json.load(file)
            return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def _replace(path: str, data: bytes) -> None:
    with open(path + ".tmp", "wb") as file:
        file.write(data)
    os.replace(path + ".tmp", path)
