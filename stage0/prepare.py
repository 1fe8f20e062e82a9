"""Preparing a pod: images → rendered trees, and the pod spec stage1 runs (``pod.json``).

Everything stage1 needs is resolved here, against each app's own rendered rootfs: the executable
(searched in the app's PATH, symlinks followed inside the image), user and group (the image's
/etc/passwd and /etc/group, a number, or the owner of a path), and the environment, layered as
rkt does: host (``--inherit-env``) < image < ``--set-env-file`` < ``--set-env`` < ``--environment``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stage0.errors import Error, UsageError
from stage0.fetch.fetcher import Fetcher
from stage0.render import rendered_rootfs
from stage0.schema.boundary import parse_image_manifest
from stage0.schema.image import ImageManifest
from stage0.schema.isolators import Isolator
from stage0.schema.quantity import Quantity
from stage0.store.index import ImageRow
from stage1.abi import DEFAULT_PATH, DEFAULT_STOP_TIMEOUT, AppSpec, PodSpec, VolumeSpec

NOTIFY = "appc.io/executor/supports-systemd-notify"


class PrepareError(Error):
    hint = "check the image with 'nspod image cat-manifest IMAGE'"


@dataclass(frozen=True, slots=True)
class AppRequest:
    """One image on the command line with its per-app flags."""

    image: str
    name: str | None = None
    exec: str | None = None
    args: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    group: str | None = None
    working_dir: str | None = None
    signature: str | None = None
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (volume, path, read-only)
    isolators: tuple[Isolator, ...] | None = None  # replaces the image's
    stop_timeout: float | None = None  # seconds


@dataclass(frozen=True, slots=True)
class PodRequest:
    apps: tuple[AppRequest, ...]
    name: str | None = None
    hostname: str | None = None
    set_env: tuple[tuple[str, str], ...] = ()
    env_file: tuple[tuple[str, str], ...] = ()
    inherit_env: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[VolumeSpec, ...] = ()
    mounts: tuple[tuple[str, str, bool], ...] = ()  # for every app


def parse_env(text: str, what: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
        raise UsageError(f"bad {what} {text!r}", hint="write NAME=VALUE")
    return name, value


def _options(text: str, what: str) -> tuple[str, dict[str, str]]:
    """``name,key=value,…`` (rkt's --volume) or ``key=value,…`` (--mount)."""
    head, *rest = text.split(",")
    options = {}
    for part in ([head] if "=" in head else []) + rest:
        key, equals, value = part.partition("=")
        if not equals:
            raise UsageError(f"bad {what} {text!r}: {part!r} is not key=value")
        options[key] = value
    return ("" if "=" in head else head), options


def _flag(value: str, what: str) -> bool:
    if value not in ("true", "false"):
        raise UsageError(f"{what} must be true or false, not {value!r}")
    return value == "true"


def parse_volume(text: str) -> VolumeSpec:
    """``NAME,kind=host,source=/path[,readOnly=true]`` or ``NAME,kind=empty[,mode=0755,uid=0,gid=0]``."""
    name, options = _options(text, "--volume")
    kind = options.pop("kind", "")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) or kind not in ("host", "empty"):
        raise UsageError(f"bad --volume {text!r}", hint="NAME,kind=host,source=/path or NAME,kind=empty")
    read_only = _flag(options.pop("readOnly", "false"), "readOnly")
    try:
        if kind == "host":
            source = options.pop("source", "")
            if not source.startswith("/"):
                raise UsageError(f"--volume {name}: source must be an absolute host path")
            spec = VolumeSpec(name=name, kind=kind, source=source, read_only=read_only)
        else:
            spec = VolumeSpec(
                name=name,
                kind=kind,
                read_only=read_only,
                mode=int(options.pop("mode", "0755"), 8),
                uid=int(options.pop("uid", "0")),
                gid=int(options.pop("gid", "0")),
            )
    except ValueError:
        raise UsageError(f"bad --volume {text!r}: mode is octal, uid and gid are numbers") from None
    if options:
        raise UsageError(f"--volume {name}: unknown option(s) {', '.join(options)}")
    return spec


def parse_mount(text: str) -> tuple[str, str, bool]:
    """``volume=NAME,target=/path[,readOnly=true]``."""
    _, options = _options(text, "--mount")
    volume, target = options.pop("volume", ""), options.pop("target", "")
    read_only = _flag(options.pop("readOnly", "false"), "readOnly")
    if not volume or not target.startswith("/") or options:
        raise UsageError(f"bad --mount {text!r}", hint="volume=NAME,target=/path[,readOnly=true]")
    return volume, target, read_only


def parse_seconds(text: str, flag: str) -> float:
    """A positive number of seconds, at most an hour (``--stop-timeout=2.5``)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 3600:
        raise UsageError(f"bad {flag} {text!r}: seconds, more than 0 and at most 3600", hint=f"{flag}=10")
    return seconds


def read_env_file(path: str) -> tuple[tuple[str, str], ...]:
    try:
        with open(path) as file:
            lines = [line.strip() for line in file]
    except OSError as error:
        raise UsageError(f"cannot read env file {path}: {error.strerror}") from None
    return tuple(parse_env(line, f"line in {path}") for line in lines if line and not line.startswith("#"))


def resolve_in_root(root: str, path: str, hops: int = 40) -> str | None:
    """``path`` inside the image rooted at ``root``, symlinks followed as the app would see them;
    the host path of the final file, or None if it does not exist."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current[:-1]
            continue
        candidate = os.path.join(root, *current, part)
        if os.path.islink(candidate):
            if hops == 0:
                return None
            hops -= 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        if not os.path.lexists(candidate):
            return None
        current.append(part)
    return os.path.join(root, *current)


def find_executable(root: str, command: str, path_var: str) -> str:
    """The absolute in-image path of ``command`` (execvp's rules, inside the image)."""
    if "/" in command:
        candidates = [command if command.startswith("/") else "/" + command]
    else:
        candidates = [f"{d.rstrip('/')}/{command}" for d in path_var.split(":") if d.startswith("/")]
    for candidate in candidates:
        host = resolve_in_root(root, candidate)
        if host and os.path.isfile(host) and os.access(host, os.X_OK):
            return candidate
    raise PrepareError(
        f"{command!r} is not an executable file in the image",
        hint="give its absolute path with --exec, or check the image's PATH",
    )


def _lookup(root: str, table: str, name: str) -> int | None:
    host = resolve_in_root(root, f"/etc/{table}")
    if host is None or not os.path.isfile(host):
        return None
    with open(host, errors="replace") as file:
        for line in file:
            fields = line.rstrip("\n").split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    return None


def resolve_id(root: str, value: str, table: str) -> int:
    """appc's order: a name in the image's /etc/passwd|group, a number, or the owner of a path."""
    found = _lookup(root, table, value)
    if found is not None:
        return found
    if value.isdigit():
        return int(value)
    if value.startswith("/"):
        host = resolve_in_root(root, value)
        if host is not None:
            st = os.stat(host)
            return st.st_uid if table == "passwd" else st.st_gid
    what = "user" if table == "passwd" else "group"
    raise PrepareError(
        f"{what} {value!r} is not in the image's /etc/{table}, not a number and not a path in it"
    )


def default_app_name(image_name: str) -> str:
    """``example.com/my_app`` → ``my-app``: the last path component as an AC name."""
    base = re.sub(r"[^a-z0-9]+", "-", image_name.rsplit("/", 1)[-1].lower()).strip("-")
    return base or "app"


def app_spec(
    request: AppRequest, row: ImageRow, manifest: ImageManifest, rootfs: str, pod: PodRequest, name: str
) -> AppSpec:
    app = manifest.app
    if app is None and request.exec is None:
        raise PrepareError(f"image {manifest.name} has no app to run", hint="say what to run with --exec")
    image_exec = list(app.exec) if app else []
    argv = [request.exec or (image_exec[0] if image_exec else "")]
    if not argv[0]:
        raise PrepareError(f"image {manifest.name} has no exec", hint="say what to run with --exec")
    argv += list(request.args) if request.args is not None else ([] if request.exec else image_exec[1:])
    env: dict[str, str] = dict(pod.inherit_env)
    env.update({str(e.name): e.value for e in app.environment} if app else {})
    env.update(dict(pod.env_file))
    env.update(dict(pod.set_env))
    env.update(dict(request.environment))
    env.pop("AC_APP_NAME", None)
    path_var = env.get("PATH", DEFAULT_PATH)
    argv[0] = find_executable(rootfs, argv[0], path_var)
    explicit = (*pod.mounts, *request.mounts)
    mounted = {path for _, path, _ in explicit}
    # appc: a pod volume named like one of the app's mount points is mounted there
    implicit = tuple(
        (str(m.name), str(m.path), m.read_only)
        for m in (app.mount_points if app else ())
        if str(m.name) in {v.name for v in pod.volumes} and str(m.path) not in mounted
    )
    user = request.user or (app.user if app else "0")
    group = request.group or (app.group if app else "0")
    handlers = app.event_handlers if app else ()
    return AppSpec(
        name=name,
        rootfs=rootfs,
        exec=tuple(argv),
        env=tuple(sorted(env.items())),
        user=resolve_id(rootfs, user, "passwd"),
        group=resolve_id(rootfs, group, "group"),
        supplementary_gids=app.supplementary_gids if app else (),
        working_directory=request.working_dir
        or (app.working_directory if app and app.working_directory else "/"),
        pre_start=tuple(h.exec for h in handlers if h.name == "pre-start"),
        post_stop=tuple(h.exec for h in handlers if h.name == "post-stop"),
        notify=manifest.annotation(NOTIFY) == "true",
        sockets=tuple(str(p.name) for p in app.ports if p.socket_activated) if app else (),
        mounts=explicit + implicit,
        stop_timeout=DEFAULT_STOP_TIMEOUT if request.stop_timeout is None else request.stop_timeout,
        **isolator_limits(
            request.isolators if request.isolators is not None else (app.isolators if app else ())
        ),
    )


def build_pod(
    uuid: str, request: PodRequest, fetcher: Fetcher
) -> tuple[PodSpec, dict[str, object], list[str]]:
    """The pod spec, the appc PodManifest (for cat-manifest) and the image IDs, fetching as needed."""
    if not request.apps:
        raise UsageError("no image given", hint="nspod run IMAGE [IMAGE…]")
    apps: list[AppSpec] = []
    manifest_apps: list[dict[str, object]] = []
    image_ids: list[str] = []
    for request_app in request.apps:
        row = fetcher.fetch(request_app.image, signature=request_app.signature)
        manifest = parse_image_manifest(row.manifest, row.name, trusted=True)
        rootfs = rendered_rootfs(fetcher.store, row, fetcher.resolve_dependency)
        name = request_app.name or default_app_name(str(manifest.name))
        if name in (a.name for a in apps):
            raise UsageError(f"two apps are called {name!r}", hint="name them with --name after each image")
        apps.append(app_spec(request_app, row, manifest, rootfs, request, name))
        image_ids.append(row.id)
        manifest_apps.append(
            {
                "name": name,
                "image": {
                    "name": row.name,
                    "id": row.id,
                    "labels": [{"name": k, "value": v} for k, v in sorted(row.labels.items())],
                },
                **({"app": manifest.app.to_json()} if manifest.app else {}),
            }
        )
    check_volumes(request.volumes, apps)
    machine = request.name or f"nspod-{uuid}"
    spec = PodSpec(
        uuid=uuid,
        machine=machine,
        hostname=request.hostname or machine,
        apps=tuple(apps),
        volumes=request.volumes,
    )
    pod_manifest: dict[str, object] = {
        "acKind": "PodManifest",
        "acVersion": "0.8.11",
        "apps": manifest_apps,
        "annotations": [{"name": "nspod.io/machine", "value": machine}],
    }
    return spec, pod_manifest, image_ids


def isolator_limits(isolators: tuple[Isolator, ...]) -> dict[str, Any]:
    """appc isolators (already validated) as AppSpec fields; the last of a kind wins."""
    limits: dict[str, Any] = {}
    for isolator in isolators:
        value = isolator.value
        match str(isolator.name):
            case "resource/memory" if value.get("limit") is not None:
                limits["memory_max"] = int(Quantity(value["limit"]).value)
            case "resource/cpu" if value.get("limit") is not None:
                limits["cpu_quota"] = max(1, int(Quantity(value["limit"]).value * 100))
            case "os/linux/capabilities-retain-set":
                limits["capabilities"] = tuple(value["set"])
            case "os/linux/capabilities-remove-set":
                limits["capabilities_removed"] = tuple(value["set"])
            case "os/linux/no-new-privileges":
                limits["no_new_privileges"] = bool(value)
    return limits


def check_volumes(volumes: tuple[VolumeSpec, ...], apps: list[AppSpec]) -> None:
    """Names unique, host sources present (appc: a missing source is an error), mounts resolvable."""
    names = [v.name for v in volumes]
    if len(set(names)) != len(names):
        raise UsageError("two volumes have the same name", hint="give each --volume its own name")
    for volume in volumes:
        if volume.kind == "host" and not os.path.isdir(volume.source):
            raise PrepareError(
                f"volume {volume.name}: host directory {volume.source} does not exist",
                hint="create it first; nspod does not create host paths",
            )
    for app in apps:
        for name, path, _ in app.mounts:
            if name not in names:
                raise UsageError(
                    f"app {app.name} mounts volume {name!r}, which is not defined",
                    hint="define it with --volume NAME,kind=…",
                )
            if not path.startswith("/") or ".." in path.split("/"):
                raise UsageError(f"app {app.name}: mount target {path!r} must be an absolute path")


def write_pod(path: str, spec: PodSpec, manifest: Mapping[str, object], image_ids: list[str]) -> None:
    from stage1.abi import PodPaths

    paths = PodPaths(path)
    for target, text in (
        (paths.spec, spec.to_json()),
        (paths.manifest, json.dumps(manifest, indent=2) + "\n"),
        (paths.images, "".join(i + "\n" for i in image_ids)),
    ):
        with open(target + ".tmp", "w") as file:
            file.write(text)
        os.replace(target + ".tmp", target)
