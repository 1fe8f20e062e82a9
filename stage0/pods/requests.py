"""What a user asks for: a pod of images with per-app and pod-wide flags (rkt's command line, or
a pod file), parsed into plain data the planner (stage0/pods/planner.py) takes."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stage0.errors import UsageError
from stage0.pods.dns import DnsRequest
from stage0.pods.network import PortRequest
from stage0.schema.app import App
from stage0.schema.isolators import Isolator
from stage1.abi import VolumeSpec

# systemd's rule for a machine name (hostname_is_valid): dot-separated labels of ASCII letters,
# digits and '-', none starting or ending with '-', 64 characters in all; nspawn and machined refuse
# any other, so a pod's name is checked against it before anything is made for the pod
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
POD_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
POD_NAME_MAX = 64


def check_pod_name(name: str, what: str = "--name") -> str:
    """``name``, if systemd takes it for a machine (a pod's name, a pod file's, a pod@ instance)."""
    if len(name) > POD_NAME_MAX or not POD_NAME.fullmatch(name):
        raise UsageError(
            f"{what}: {name!r} is not a valid pod name",
            hint=f"use letters, digits and '-' (not first or last), in parts joined by '.', "
            f"{POD_NAME_MAX} characters at most: systemd's rule for machine names",
        )
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class Confinement:
    """An app's confinement as an orchestrator states it whole (the CRI's security context,
    stage0/cri/security.py), over the image's isolators. Capability names are ``CAP_…``; "ALL"
    adds or drops every one."""

    privileged: bool = False  # Kubernetes' privileged container (stage1/abi.py AppSpec.privileged)
    capabilities_added: tuple[str, ...] = ()  # over nspod's default bounding set
    capabilities_dropped: tuple[str, ...] = ()
    # "": nspod's default filter; "unconfined": none; "retain"/"remove": the calls allowed/denied
    seccomp_mode: str = ""
    seccomp_set: tuple[str, ...] = ()
    seccomp_errno: str = ""
    no_new_privileges: bool | None = None  # None: nspod's rule; False: escalation allowed
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    # the groups the image's /etc/group gives the user join its supplementary ones, and a user
    # without a group gets its primary one from the image's /etc/passwd (what docker and the CRI do)
    image_groups: bool = False
    own_pid_namespace: bool = False  # the app PID 1 of a PID namespace of its own (the CRI's pid CONTAINER)


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
    overrides: tuple[Isolator, ...] = ()  # --memory, --caps-retain …: over the image's, kind by kind
    flags: tuple[tuple[str, str], ...] = ()  # those flags as written, for a pod file (--save-as)
    supplementary_gids: tuple[int, ...] | None = None  # replaces the image's
    read_only_rootfs: bool | None = None  # None: the pod manifest's default, writable
    app: App | None = None  # a pod manifest's app, replacing the image's whole (--pod-manifest)
    annotations: tuple[tuple[str, str], ...] = ()  # the app's, in the pod manifest
    log_path: str = ""  # a CRI container's log file (absolute host path), besides the journal
    cri_stdio: bool = False  # a CRI container's stdio, stdin, stdin_once and tty (stage1.abi AppSpec)
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    confinement: Confinement | None = None  # an orchestrator's (the CRI's), over the image's isolators
    health: tuple[
        tuple[str, str], ...
    ] = ()  # health-cmd …: (key without "health-", value), stage0/pods/health.py


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
    # parts of the default confinement lifted on purpose (--insecure-options=capabilities,paths,seccomp)
    relaxed: tuple[str, ...] = ()
    private_users: bool = False  # a user namespace of the pod's own (stage0/pods/userns.py)
    stage1: str = ""  # a pod file's ``stage1 =`` (stage0/pods/flavor.py); "": the invocation's --stage1
    annotations: tuple[tuple[str, str], ...] = ()  # the pod's, in the pod manifest
    dns: DnsRequest = field(default_factory=DnsRequest)  # --dns…, --hosts-entry
    nets: tuple[str, ...] = ()  # --net words (stage0/pods/network.py); () is the default net
    ports: tuple[PortRequest, ...] = ()  # --port
    mds_register: bool | None = None  # --mds-register; None: where the metadata service listens
    sandbox: bool = False  # nspod app sandbox: no apps yet, more come and go while it runs
    # kept in the pod's bounding set beyond its apps' ("ALL": nspawn's whole), for a sandbox's
    # later apps (the CRI's: a container may add any capability)
    capabilities: tuple[str, ...] = ()
    sysctl: tuple[tuple[str, str], ...] = ()  # the pod's own kernel settings (the CRI's sysctls)
    app_filters: bool = False  # no nspawn filter over the pod: each app's own alone (the CRI's)
    # the CRI's hostPID: the sandbox's apps run as host units in the host's PID namespace (stage1/fly)
    host_pid: bool = False
    host_ipc: bool = False  # its apps in the host's IPC namespace (the CRI's ipc NODE)
    cgroup_parent: str = ""  # the host slice the pod's unit runs in ("": machine.slice; the CRI's)


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


def parse_flag(value: str, what: str) -> bool:
    if value not in ("true", "false"):
        raise UsageError(f"{what} must be true or false, not {value!r}")
    return value == "true"


def parse_volume(text: str) -> VolumeSpec:
    """``NAME,kind=host,source=/path[,readOnly=true]`` or ``NAME,kind=empty[,mode=0755,uid=0,gid=0]``,
    either with ``idmap=true`` (with --private-users: IDs inside are the host's on it)."""
    name, options = _options(text, "--volume")
    kind = options.pop("kind", "")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) or kind not in ("host", "empty"):
        raise UsageError(f"bad --volume {text!r}", hint="NAME,kind=host,source=/path or NAME,kind=empty")
    read_only = parse_flag(options.pop("readOnly", "false"), "readOnly")
    idmap = parse_flag(options.pop("idmap", "false"), "idmap")
    try:
        if kind == "host":
            source = options.pop("source", "")
            if not source.startswith("/"):
                raise UsageError(f"--volume {name}: source must be an absolute host path")
            spec = VolumeSpec(name=name, kind=kind, source=source, read_only=read_only, idmap=idmap)
        else:
            spec = VolumeSpec(
                name=name,
                kind=kind,
                read_only=read_only,
                mode=int(options.pop("mode", "0755"), 8),
                uid=int(options.pop("uid", "0")),
                gid=int(options.pop("gid", "0")),
                idmap=idmap,
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
    read_only = parse_flag(options.pop("readOnly", "false"), "readOnly")
    if not volume or not target.startswith("/") or options:
        raise UsageError(f"bad --mount {text!r}", hint="volume=NAME,target=/path[,readOnly=true]")
    return volume, target, read_only


def _isolator(name: str, value: Callable[[str], object]) -> Callable[[str], dict[str, object]]:
    return lambda text: {"name": name, "value": value(text)}


def _number(text: str) -> int:
    if not re.fullmatch(r"-?[0-9]+", text):
        raise ValueError("not a number")
    return int(text)


def _seccomp(text: str) -> dict[str, object]:
    """rkt's ``mode=retain|remove[,errno=ENOSYS],CALL|@WILDCARD,…``."""
    options = dict(p.partition("=")[::2] for p in text.split(",") if "=" in p)
    calls = [p for p in text.split(",") if "=" not in p]
    if options.keys() - {"mode", "errno"} or options.get("mode") not in ("retain", "remove"):
        raise ValueError("write mode=retain|remove[,errno=E],CALL,…")
    value: dict[str, object] = {"set": calls}
    if "errno" in options:
        value["errno"] = options["errno"]
    return {"name": f"os/linux/seccomp-{options['mode']}-set", "value": value}


# rkt's per-app isolator flags → the appc isolator each flag's text stands for
ISOLATOR_FLAGS: dict[str, Callable[[str], dict[str, object]]] = {
    "--memory": _isolator("resource/memory", lambda text: {"limit": text}),
    "--cpu": _isolator("resource/cpu", lambda text: {"limit": text}),
    "--cpu-shares": _isolator("os/linux/cpu-shares", _number),
    "--oom-score-adj": _isolator("os/linux/oom-score-adj", _number),
    "--caps-retain": _isolator("os/linux/capabilities-retain-set", lambda text: {"set": text.split(",")}),
    "--caps-remove": _isolator("os/linux/capabilities-remove-set", lambda text: {"set": text.split(",")}),
    "--seccomp": _seccomp,
}


def parse_isolator_flag(flag: str, text: str) -> Isolator:
    """``--memory=512M`` and its kin as the appc isolator they stand for, checked by the schema."""
    from stage0.errors import SchemaError

    try:
        return Isolator.from_json(ISOLATOR_FLAGS[flag](text), "", allow_unknown=False)
    except (SchemaError, ValueError) as error:
        problem = error.problem if isinstance(error, SchemaError) else str(error)
        raise UsageError(
            f"bad {flag} {text!r}: {problem}", hint=f"see 'nspod run --help' for {flag}"
        ) from None


# the per-app flags that shape the app's profile, each also a key of a pod file's [[app]]
PROFILE_FLAGS = (*ISOLATOR_FLAGS, "--supplementary-gids", "--readonly-rootfs")


def profile_option(fields: dict[str, Any], flag: str, text: str) -> None:
    """One profile flag (command line or pod file) into the AppRequest ``fields``."""
    if flag in ISOLATOR_FLAGS:
        fields["overrides"] = (*fields.get("overrides", ()), parse_isolator_flag(flag, text))
        fields["flags"] = (*fields.get("flags", ()), (flag, text))
    elif flag == "--supplementary-gids":
        fields["supplementary_gids"] = parse_gids(text)
    else:
        fields["read_only_rootfs"] = parse_flag(text, flag)


def parse_gids(text: str) -> tuple[int, ...]:
    """``--supplementary-gids=100,200``."""
    try:
        return tuple(int(g) for g in text.split(",") if g)
    except ValueError:
        raise UsageError(f"bad --supplementary-gids {text!r}", hint="numbers, comma-separated") from None


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
