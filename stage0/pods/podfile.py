"""Pod files: one human-written TOML file per pod, run by ``systemctl start pod@NAME``.

Searched for as ``NAME.toml`` in the local config (``/etc/nspod/pods``), ``/run/nspod/pods`` and the
system config (``/usr/lib/nspod/pods``), first found wins. Checked against the shipped JSON Schema
(``schemas/pod-file.json``); errors name the file and the key::

    hostname = "web"                       # default: NAME
    environment = { TZ = "UTC" }           # for every app (like --set-env)
    net = ["default"]                      # like --net (the default)
    port = ["http:8080"]                   # like --port=NAME:[HOSTIP:]HOSTPORT
    auto-update = "registry"               # follow the images' tags: nspod auto-update
    publish = ["8443:443"]                 # like -p [HOSTIP:]HOSTPORT:PORT[/udp]

    [[app]]
    image = "example.com/web:1.0"          # name[:version][,labels], URL, file or image ID
    name = "web"                           # default: from the image name
    exec = "/usr/sbin/httpd"               # like --exec
    args = ["-f", "-p", "80"]              # like the arguments after --
    environment = { PORT = "80" }          # like --environment
    user = "www-data"                      # like --user / --group
    working-directory = "/srv"

    [service]                              # systemd settings of pod@NAME.service (nspod pod install)
    Restart = "on-failure"
    After = ["pod@db.service"]
    Requires = ["pod@db.service"]
    MemoryMax = "512M"
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from stage0.errors import Error, ErrorKind, SchemaError
from stage0.host.atomic import write_atomic
from stage0.pods.network import net_words, parse_port
from stage0.pods.podman import parse_publish, publish_text
from stage0.pods.requests import PROFILE_FLAGS, AppRequest, PodRequest, check_pod_name, profile_option
from stage0.schema.isolators import Isolator, parse_isolators
from stage1.abi import VolumeSpec

T = TypeVar("T")
RUNTIME_DIR = "/run/nspod/pods"

# [service] keys and the unit file section each belongs to; anything else is refused by name.
UNIT_KEYS = (
    "Description",
    "Documentation",
    "After",
    "Before",
    "Requires",
    "Wants",
    "BindsTo",
    "PartOf",
    "Conflicts",
    "Upholds",
    "OnFailure",
    "StartLimitIntervalSec",
    "StartLimitBurst",
)
SERVICE_KEYS = (
    "Restart",
    "RestartSec",
    "TimeoutStartSec",
    "TimeoutStopSec",
    "MemoryMax",
    "MemoryHigh",
    "MemorySwapMax",
    "CPUQuota",
    "CPUWeight",
    "TasksMax",
    "IOWeight",
    "OOMPolicy",
    "OOMScoreAdjust",
    "Nice",
    "LimitNOFILE",
    "WatchdogSec",
    "SuccessExitStatus",
    "RestartPreventExitStatus",
)


class PodFileError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "fix the pod file; the format is described in 'nspod pod --help' and the README"


@dataclass(frozen=True, slots=True)
class PodFile:
    name: str
    path: str
    request: PodRequest
    service: tuple[tuple[str, str, str], ...]  # (section, key, value) for the drop-in
    auto_update: str | None = None  # "registry": follow the images' tags (nspod auto-update)
    auto_update_timeout: float = 60.0  # seconds an updated pod has to be ready, else rolled back


def search_path(local_config: str, system_config: str) -> list[str]:
    return [os.path.join(local_config, "pods"), RUNTIME_DIR, os.path.join(system_config, "pods")]


def find(name: str, dirs: list[str]) -> str:
    check_pod_name(name, "pod")
    for directory in dirs:
        path = os.path.join(directory, f"{name}.toml")
        if os.path.isfile(path):
            return path
    raise PodFileError(
        f"no pod file {name}.toml in {', '.join(dirs)}",
        hint=f"write one there, or see 'nspod run … --save-as {name}'",
    )


def _value(raw: Any) -> str:
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    if isinstance(raw, list):
        return " ".join(raw)
    return str(raw)


def _isolators(app: dict[str, Any], index: int, path: str) -> tuple[Isolator, ...] | None:
    """An app's ``isolators`` (appc's shape), checked like an image's; they replace the image's."""
    if "isolators" not in app:
        return None
    try:
        return parse_isolators(app, f"/app/{index}", allow_unknown=False)
    except SchemaError as error:
        raise PodFileError(f"{path}: {error.message}") from None


def _profile(app: dict[str, Any], index: int, path: str) -> dict[str, Any]:
    """The profile keys of an [[app]] (those of the command line's flags), read as the flags are."""
    fields: dict[str, Any] = {}
    for flag in PROFILE_FLAGS:
        raw = app.get(flag[2:])
        if raw is None:
            continue
        text = (
            ",".join(map(str, raw))
            if isinstance(raw, list)
            else _toml(raw)
            if isinstance(raw, bool)
            else str(raw)
        )
        try:
            profile_option(fields, flag, text)
        except Error as error:
            raise PodFileError(f"{path}: /app/{index}/{flag[2:]}: {error.message}") from None
    return fields


def parse(text: str, path: str, name: str) -> PodFile:
    from stage0.schema.boundary import check_structure

    check_pod_name(name, path)  # the file's name is the pod's (pod@NAME, the machine NAME)

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PodFileError(f"{path}: not valid TOML: {error}") from None
    try:
        check_structure(doc, "PodFile")
    except SchemaError as error:
        raise PodFileError(
            f"{path}: {error.message}", hint="see the pod file format in the README"
        ) from None
    service: list[tuple[str, str, str]] = []
    for key, raw in doc.get("service", {}).items():
        section = "Unit" if key in UNIT_KEYS else "Service" if key in SERVICE_KEYS else None
        if section is None:
            raise PodFileError(
                f"{path}: /service/{key}: not a setting nspod passes to the unit",
                hint=f"settings: {', '.join(UNIT_KEYS + SERVICE_KEYS)}",
            )
        if "\n" in _value(raw):
            raise PodFileError(f"{path}: /service/{key}: must be one line")
        service.append((section, key, _value(raw)))
    apps = tuple(
        AppRequest(
            **_profile(app, i, path),
            image=app["image"],
            name=app.get("name"),
            exec=app.get("exec"),
            args=tuple(app["args"]) if "args" in app else None,
            environment=tuple(app.get("environment", {}).items()),
            user=app.get("user"),
            group=app.get("group"),
            working_dir=app.get("working-directory"),
            mounts=tuple((m["volume"], m["path"], m.get("read-only", False)) for m in app.get("mounts", [])),
            isolators=_isolators(app, i, path),
            stop_timeout=app.get("stop-timeout"),
            health=_health(app, i, path),
        )
        for i, app in enumerate(doc["app"])
    )
    volumes = []
    for i, raw in enumerate(doc.get("volume", [])):
        if (raw["kind"] == "host") != ("source" in raw):
            raise PodFileError(
                f"{path}: /volume/{i}/source: a host volume needs one, an empty volume has none"
            )
        volumes.append(
            VolumeSpec(
                name=raw["name"],
                kind=raw["kind"],
                source=raw.get("source", ""),
                read_only=raw.get("read-only", False),
                mode=int(raw.get("mode", "0755"), 8),
                uid=raw.get("uid", 0),
                gid=raw.get("gid", 0),
                idmap=raw.get("idmap", False),
            )
        )
    request = PodRequest(
        apps=apps,
        name=name,
        hostname=doc.get("hostname") or name,
        set_env=tuple(doc.get("environment", {}).items()),
        volumes=tuple(volumes),
        relaxed=_relaxed(doc.get("insecure-options", [])),
        stage1=doc.get("stage1", ""),
        private_users=doc.get("private-users", False),
        nets=_checked(path, "net", lambda: net_words(doc.get("net", []))),
        ports=_checked(path, "port", lambda: tuple(parse_port(p) for p in doc.get("port", [])))
        + _checked(path, "publish", lambda: tuple(parse_publish(p) for p in doc.get("publish", []))),
        mds_register=doc.get("mds-register"),
    )
    timeout = doc.get("auto-update-timeout", 60.0)
    return PodFile(name, path, request, tuple(service), doc.get("auto-update"), float(timeout))


def _health(app: dict[str, Any], index: int, path: str) -> tuple[tuple[str, str], ...]:
    """The [[app]]'s health keys (stage0/pods/health.py), checked as the flags are."""
    from functools import partial

    from stage0.pods.health import checked

    given = {k[len("health-") :]: v for k, v in app.items() if k.startswith("health-")}
    text = {k: json.dumps(v) if isinstance(v, list) else str(v) for k, v in given.items()}
    return tuple(
        (k, _checked(path, f"app/{index}/health-{k}", partial(checked, k, v, ""))) for k, v in text.items()
    )


def _relaxed(words: list[str]) -> tuple[str, ...]:
    """The parts of the profile a pod file lifts; ``all-run`` is all four (stage0/api/pods.py RELAXABLE)."""
    every = ("capabilities", "namespaces", "paths", "seccomp")
    return tuple(sorted({w for word in words for w in (every if word == "all-run" else (word,))}))


def _checked(path: str, key: str, parse: Callable[[], T]) -> T:
    """A key read as its flag is, its error naming the file and the key."""
    try:
        return parse()
    except Error as error:
        raise PodFileError(f"{path}: /{key}: {error.message}", hint=error.hint) from None


def load(name: str, dirs: list[str]) -> PodFile:
    path = find(name, dirs)
    try:
        with open(path) as file:
            text = file.read()
    except OSError as error:
        raise PodFileError(f"cannot read {path}: {error.strerror}") from None
    return parse(text, path, name)


def drop_in(pod: PodFile) -> str:
    """The per-instance drop-in (``pod@NAME.service.d/50-nspod.conf``) for the [service] table."""
    lines = [f"# written by 'nspod pod install {pod.name}' from {pod.path}; changes here are overwritten"]
    for section in ("Unit", "Service"):
        entries = [(k, v) for s, k, v in pod.service if s == section]
        if entries:
            lines += ["", f"[{section}]", *(f"{k}={v}" for k, v in entries)]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """TOML for the few shapes a pod file has (JSON strings are valid TOML basic strings)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}" if isinstance(value, float) and not value.is_integer() else str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(type(value))


INTEGER_KEYS = ("cpu-shares", "oom-score-adj")


def render(request: PodRequest) -> str:
    """A pod file saying what ``request`` says (``nspod run … --save-as NAME``)."""
    lines = ["# written by 'nspod run --save-as'; see the pod file format in the README"]
    if request.hostname:
        lines.append(f"hostname = {_toml(request.hostname)}")
    environment = {**dict(request.env_file), **dict(request.set_env)}
    if environment:
        lines.append(f"environment = {_toml(environment)}")
    if request.relaxed:
        lines.append(f"insecure-options = {_toml(list(request.relaxed))}")
    if request.private_users:
        lines.append("private-users = true")
    if request.nets:
        lines.append(f"net = {_toml(list(request.nets))}")
    if named := [p.flag() for p in request.ports if p.name]:
        lines.append(f"port = {_toml(named)}")
    if numbered := [publish_text(p) for p in request.ports if not p.name]:  # podman's -p
        lines.append(f"publish = {_toml(numbered)}")
    if request.mds_register is not None:
        lines.append(f"mds-register = {_toml(request.mds_register)}")
    for volume in request.volumes:
        lines += ["", "[[volume]]", f"name = {_toml(volume.name)}", f"kind = {_toml(volume.kind)}"]
        if volume.kind == "host":
            lines.append(f"source = {_toml(volume.source)}")
        else:
            lines += [f'mode = "{volume.mode:04o}"', f"uid = {volume.uid}", f"gid = {volume.gid}"]
        lines.append(f"read-only = {'true' if volume.read_only else 'false'}")
        if volume.idmap:
            lines.append("idmap = true")
    for app in request.apps:
        lines += ["", "[[app]]", f"image = {_toml(app.image)}"]
        for key, value in (
            ("name", app.name),
            ("exec", app.exec),
            ("user", app.user),
            ("group", app.group),
            ("working-directory", app.working_dir),
            ("stop-timeout", app.stop_timeout),
        ):
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
        if app.args is not None:
            lines.append(f"args = {_toml(list(app.args))}")
        if app.environment:
            lines.append(f"environment = {_toml(dict(app.environment))}")
        for flag, text in app.flags:  # the profile flags, typed as the pod file's keys are
            key = flag[2:]
            typed: object = (
                text.split(",") if key.startswith("caps-") else int(text) if key in INTEGER_KEYS else text
            )
            lines.append(f"{key} = {_toml(typed)}")
        for key, text in app.health:
            lines.append(f"health-{key} = {_toml(int(text) if key == 'retries' else text)}")
        if app.supplementary_gids is not None:
            lines.append(f"supplementary-gids = {_toml(list(app.supplementary_gids))}")
        if app.read_only_rootfs is not None:
            lines.append(f"readonly-rootfs = {_toml(app.read_only_rootfs)}")
        mounts = (*request.mounts, *app.mounts)  # pod-wide mounts go to every app
        if mounts:
            entries = ", ".join(
                f"{{ volume = {_toml(v)}, path = {_toml(p)}, read-only = {str(ro).lower()} }}"
                for v, p, ro in mounts
            )
            lines.append(f"mounts = [{entries}]")
    return "\n".join(lines) + "\n"


def save(request: PodRequest, name: str, directory: str) -> str:
    """Write ``directory/NAME.toml`` for ``request``, refusing to replace a pod file."""
    check_pod_name(name, "--save-as")
    text = render(request)
    path = os.path.join(directory, f"{name}.toml")
    parse(text, path, name)  # what we write must read back
    if os.path.exists(path):
        raise PodFileError(f"{path} already exists", hint="remove it first, or choose another name")
    os.makedirs(directory, exist_ok=True)
    write_atomic(path, text)
    return path
