"""The contract between stage0 (the nspod CLI) and stage1 (the systemd executor).

stage0 imports this module, and stage0/host/executor.py the entry points; stage1 never imports stage0.
Standard library only (tested): the contract loads nothing of the executor. Everything here is
versioned by :data:`ABI_VERSION` and documented in ``stage1/ABI.md``:

* errors: an :class:`Error` carries a one-line message and a hint; each program prints it once
  and exits :attr:`ExitCode.FAILURE` (254), apart from any exit code an app passes through;
* the pod specification (:class:`PodSpec`, ``pod.json`` in the pod directory), which stage0
  writes and stage1 reads — plain data, no appc or OCI types;
* the pod directory's files (:class:`PodPaths`) and stage1's entry points (:data:`ENTRYPOINTS`,
  :data:`INTERFACE_VERSION`), with the constants both stages use.
"""

from __future__ import annotations

import enum
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

# What each version added: stage1/ABI.md. A stage1 reads specs of every earlier version as well
# (each only added fields with defaults).
ABI_VERSION = 10
READABLE_ABI_VERSIONS = tuple(range(1, 11))
_FLAGS = (  # the pod's switches, false when missing
    "resolv_conf_from_host",
    "hosts_from_host",
    "dns_default",
    "sandbox",
    "app_filters",
    "host_pid",
    "host_ipc",
)
DEFAULT_STOP_TIMEOUT = 10.0  # seconds an app has to end after SIGTERM (docker's and podman's 10)

__all__ = [
    "ABI_VERSION", "APP_ROOT", "DEFAULT_PATH", "ENTRYPOINTS", "INTERFACE_VERSION", "MDS_PORT",
    "MDS_SOCKET", "SECCOMP_ALL", "SECCOMP_EMPTY", "SECCOMP_WILDCARDS", "USERNS_SIZE", "AppSpec",
    "Error", "ExitCode", "HealthSpec", "NetworkSpec", "PodPaths", "PodSpec", "PortSpec", "VolumeSpec",
    "own_unit", "signal_name", "unit_name",
]  # fmt: skip


class ExitCode(enum.IntEnum):
    """Exit codes of nspod's own programs. ``run`` passes the app's code through instead."""

    OK = 0
    USAGE = 2
    FAILURE = 254


class Error(Exception):
    """Root of nspod's error hierarchy: an expected failure the user can act on.

    ``message`` is one line saying what went wrong; ``hint`` says what to do about it.
    Subclasses set a default ``hint``; callers may pass a more specific one.
    """

    hint: str = "rerun with --debug for details"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def diagnostics(self) -> str:
        """The two lines a user sees: what failed, and what to do next."""
        return f"{self.message}\n  hint: {self.hint}"


# stage1's entry points: ``python -m stage1 [--debug] VERB POD_DIR [ARGS]`` (ABI.md: each one's
# arguments and exit status); stage0 calls them through stage0/host/executor.py
ENTRYPOINTS = ("run", "exec", "halt", "stop", "enter", "update", "logs", "gc", "sweep", "app")
INTERFACE_VERSION = 4  # of the entry points' command lines; bumped when one changes incompatibly

# shared by both stages: the PATH an app gets unless it sets one, and where an app's root is
# mounted in the stage1 tree (rkt's layout)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APP_ROOT = "/opt/stage2/{app}/rootfs"
USERNS_SIZE = 65536  # UIDs (and GIDs) of a pod with --private-users: 0-65535 inside
# the metadata service (stage0/pods/mds.py): stage1 registers pods on MDS_SOCKET, apps reach MDS_PORT
MDS_SOCKET = "/run/nspod/metadata.sock"
MDS_PORT = 18112

# The wildcards a seccomp set may name besides system calls (stage1/seccomp.py expands them):
# appc's two, rkt's and Docker's default lists, and systemd's groups as rkt named them.
SECCOMP_ALL, SECCOMP_EMPTY = "@appc.io/all", "@appc.io/empty"
SYSTEMD_GROUPS = (
    "aio", "basic-io", "chown", "clock", "cpu-emulation", "debug", "default", "default-whitelist",
    "file-system", "io-event", "ipc", "keyring", "known", "memlock", "module", "mount", "network-io",
    "obsolete", "pkey", "privileged", "process", "raw-io", "reboot", "resources", "sandbox", "setuid",
    "signal", "swap", "sync", "system-service", "timer",
)  # fmt: skip
SECCOMP_WILDCARDS = frozenset(
    {SECCOMP_ALL, SECCOMP_EMPTY}
    | {f"@{who}/default-{kind}" for who in ("rkt", "docker") for kind in ("whitelist", "blacklist")}
    | {f"@systemd/{group}" for group in SYSTEMD_GROUPS}
)


def own_unit() -> str:
    """The unit this process runs in (``pod@web.service``), from its cgroup."""
    with open("/proc/self/cgroup") as file:
        for line in file:
            path = line.rstrip("\n").split(":", 2)[2]
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".service"):
                return name
    raise Error("not running in a systemd service", hint="'nspod pod exec' is what pod@NAME.service runs")


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeSpec:
    """A pod volume: a host directory, or an empty one stage1 makes in the pod directory."""

    name: str
    kind: str  # "host" or "empty"
    source: str = ""  # host: the absolute host path (checked to exist by stage0)
    read_only: bool = False
    mode: int = 0o755  # empty volumes
    uid: int = 0
    gid: int = 0
    # with --private-users: bound ID-mapped, so the pod's root is host root on it (its files are
    # host root's, its setuid files host root's); by default the pod's root is its own host user
    idmap: bool = False
    # the host mount's own peer group in the app (the CRI's bidirectional propagation): what the
    # host mounts under it shows in the app, and what the app mounts there shows on the host
    shared: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSpec:
    """A CNI network the pod joins: its configuration, final (stage0 chose it), and CNI_ARGS."""

    name: str
    config: str  # the network configuration JSON, as given to the plugin on stdin
    args: str = ""  # CNI_ARGS: KEY=VALUE;KEY=VALUE


@dataclass(frozen=True, slots=True, kw_only=True)
class PortSpec:
    """An app's port forwarded from the host (--port): host traffic to ``host_ip:host_port``
    (``host_ip`` empty: any of the host's addresses, 127.0.0.1 and ::1 too) reaches the pod's ``port``."""

    name: str
    protocol: str  # "tcp" or "udp"
    port: int
    host_port: int
    host_ip: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthSpec:
    """An app's health check, run in the app's root as the app runs (stage1/health.py, ABI.md)."""

    command: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    on_failure: str = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSpec:
    """One app, resolved: stage1 does no image lookups, name resolution or PATH searches."""

    name: str
    rootfs: str  # the rendered image tree; read-only lower layer of the app's root
    lower: tuple[str, ...] = ()  # an OCI image's layers beneath rootfs (its top layer), top first
    exec: tuple[str, ...]  # argv; argv[0] is an absolute path inside the app's root
    env: tuple[tuple[str, str], ...] = ()
    user: int = 0
    group: int = 0
    supplementary_gids: tuple[int, ...] = ()
    working_directory: str = "/"
    pre_start: tuple[tuple[str, ...], ...] = ()  # commands run before exec, in the app's root
    post_stop: tuple[tuple[str, ...], ...] = ()
    notify: bool = False  # the app sends READY=1 itself (sd_notify)
    sockets: tuple[str, ...] = ()  # its socket-activated ports: inherited fds of these names go to it
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (volume, absolute path in the app, read-only)
    memory_max: int | None = None  # bytes (appc resource/memory limit)
    cpu_quota: int | None = None  # percent of one CPU (appc resource/cpu limit)
    cpu_shares: int | None = None  # relative CPU weight, cgroup v1's shares (os/linux/cpu-shares)
    oom_score_adj: int | None = None  # -1000…1000 (os/linux/oom-score-adj)
    capabilities: tuple[str, ...] | None = None  # the bounding set (capabilities-retain-set)
    capabilities_removed: tuple[str, ...] = ()  # capabilities-remove-set; "ALL": every one
    capabilities_added: tuple[str, ...] = ()  # over the bounding set (the CRI's add); "ALL": every one
    no_new_privileges: bool = False
    read_only_rootfs: bool = False
    # parts of the default confinement lifted on purpose: "capabilities", "paths", "seccomp",
    # "namespaces", "no-new-privileges" (rkt's implied rule: the CRI's no_new_privs false)
    relaxed: tuple[str, ...] = ()
    # Kubernetes' privileged container: every capability, no system call filter, the kernel's
    # paths neither hidden nor read-only, every device the pod has
    privileged: bool = False
    masked_paths: tuple[str, ...] = ()  # hidden from the app (the CRI's masked_paths)
    readonly_paths: tuple[str, ...] = ()  # read-only in the app (the CRI's readonly_paths)
    # "retain" (an allow-list) or "remove" (a deny-list); "unconfined": no seccomp filter of any
    # kind (the CRI's); "": nspod's default
    seccomp_mode: str = ""
    seccomp_set: tuple[str, ...] = ()  # system calls and SECCOMP_WILDCARDS
    seccomp_errno: str = ""  # what a filtered call returns (EPERM unless set)
    selinux_context: str = ""  # user:role:type:level, applied where SELinux is enabled
    sysctl: tuple[tuple[str, str], ...] = ()  # namespaced kernel settings (os/unix/sysctl), pod-wide
    stop_timeout: float = DEFAULT_STOP_TIMEOUT  # seconds from SIGTERM to SIGKILL when the app stops
    stop_signal: str = ""  # what stops the app (an OCI image's StopSignal); "": SIGTERM
    # a CRI container's log file on the host (kubelet's format, stage1/crilog.py), besides the
    # journal; "": none
    log_path: str = ""
    # a CRI container: its stdout and stderr FIFOs read by its writer (stage1/crilog.py), which
    # attach reaches (always so with a log_path); a stdin attach can write to; ended when the
    # first attach with stdin ends (stdin_once); a terminal (tty) its stdin, stdout and stderr are
    cri_stdio: bool = False
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    pid_namespace: str = ""  # "container": a PID namespace of the app's own (stage1/pidns.py); "": the pod's
    health: HealthSpec | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PodSpec:
    uuid: str  # RFC 4122, with dashes
    machine: str  # machined name; also the host unit's base name
    hostname: str
    apps: tuple[AppSpec, ...]
    abi: int = ABI_VERSION
    annotations: tuple[tuple[str, str], ...] = field(default=())
    volumes: tuple[VolumeSpec, ...] = ()
    # --private-users: the first host UID (and GID) of the pod's USERNS_SIZE, its root; None: none
    private_users: int | None = None
    # the apps' /etc/resolv.conf and /etc/hosts (--dns, --hosts-entry): the text nspod wrote, or
    # the host's own file (…_from_host), bound over the image's; neither: the image's own
    resolv_conf: str | None = None
    resolv_conf_from_host: bool = False
    hosts: str | None = None
    hosts_from_host: bool = False
    # neither --dns nor --dns=none: the first network's DNS settings, else the host's file
    dns_default: bool = False
    # the pod's own network namespace joins these networks, interfaces eth0, eth1…; () gives it
    # loopback only (--net=none); None: the pod shares the host's network (--net=host)
    networks: tuple[NetworkSpec, ...] | None = None
    ports: tuple[PortSpec, ...] = ()  # forwarded to the pod's address on its first masqueraded network
    # registration with the metadata service (AC_METADATA_URL): True, required; None, where one
    # listens; False, never
    mds_register: bool | None = None
    sandbox: bool = False  # an app sandbox: apps are added, started, stopped, removed while it runs
    # kept in the bounding set beyond its apps' own ("ALL": nspawn's whole): a sandbox's apps come later
    capabilities: tuple[str, ...] = ()
    sysctl: tuple[tuple[str, str], ...] = ()  # the pod's namespaced kernel settings (the CRI's sysctls)
    app_filters: bool = False  # nspawn loads no filter over the pod: each app's own alone (the CRI's)
    host_pid: bool = False  # the CRI's hostPID: the apps are host units in its PID namespace (stage1/fly)
    host_ipc: bool = False  # the apps share the host's IPC namespace (the CRI's ipc NODE), not the pod's
    slice: str = ""  # the host slice the pod's unit runs in (the CRI's cgroup parent); "": machine.slice

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PodSpec:
        data: dict[str, Any] = json.loads(text)
        if data.get("abi") not in READABLE_ABI_VERSIONS:
            raise Error(
                f"pod spec has ABI version {data.get('abi')}, this stage1 speaks {ABI_VERSION}",
                hint="run the pod with the nspod that prepared it",
            )

        def app(raw: dict[str, Any]) -> AppSpec:
            tuples = {"exec", "supplementary_gids", "sockets", "capabilities_removed", "relaxed", "lower"}
            tuples |= {"seccomp_set", "capabilities_added", "masked_paths", "readonly_paths"}
            nested = {"env", "pre_start", "post_stop", "mounts", "sysctl"}
            values: dict[str, Any] = {
                k: tuple(tuple(x) for x in v) if k in nested else tuple(v) if k in tuples else v
                for k, v in raw.items()
            }
            if values.get("capabilities") is not None:
                values["capabilities"] = tuple(values["capabilities"])
            if (health := values.get("health")) is not None:
                values["health"] = HealthSpec(**(health | {"command": tuple(health["command"])}))
            return AppSpec(**values)

        return cls(
            uuid=data["uuid"],
            machine=data["machine"],
            hostname=data["hostname"],
            apps=tuple(app(a) for a in data["apps"]),
            abi=data["abi"],
            annotations=tuple(tuple(a) for a in data.get("annotations", ())),
            volumes=tuple(VolumeSpec(**v) for v in data.get("volumes", ())),
            private_users=data.get("private_users"),
            resolv_conf=data.get("resolv_conf"),
            hosts=data.get("hosts"),
            networks=None if (raw := data.get("networks")) is None else tuple(NetworkSpec(**n) for n in raw),
            ports=tuple(PortSpec(**p) for p in data.get("ports", ())),
            mds_register=data.get("mds_register"),
            capabilities=tuple(data.get("capabilities", ())),
            sysctl=tuple(tuple(s) for s in data.get("sysctl", ())),
            slice=data.get("slice", ""),
            **{k: data.get(k, False) for k in _FLAGS},
        )

    def chosen(self, name: str | None) -> AppSpec:
        """The app named, or the pod's only one (``--app`` of enter and update)."""
        if name is None and len(self.apps) != 1:
            raise Error(
                "the pod has several apps",
                hint=f"choose one with --app ({', '.join(a.name for a in self.apps)})",
            )
        return self.app(name) if name is not None else self.apps[0]

    def app(self, name: str) -> AppSpec:
        for app in self.apps:
            if app.name == name:
                return app
        raise Error(
            f"pod {self.uuid} has no app {name!r}", hint=f"apps: {', '.join(a.name for a in self.apps)}"
        )


def signal_name(text: str | None) -> str | None:
    """``SIGTERM`` for a recorded ``15`` (as podman and ``kill -l`` name it); None for no signal."""
    if not text or not text.strip().isdigit():
        return None
    number = int(text)
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal Python has no name for
        return f"SIG{number}"


def unit_name(machine: str) -> str:
    """The host unit of a pod started by ``nspod run`` (``pod@NAME.service`` is the template's)."""
    return f"nspod-{machine}.service" if not machine.startswith("nspod-") else f"{machine}.service"


class PodPaths:
    """The files of one pod directory (``$dir/pods/<state>/<uuid>/``)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.spec = os.path.join(root, "pod.json")  # PodSpec, written by stage0
        self.manifest = os.path.join(root, "pod")  # the appc PodManifest, for cat-manifest
        self.images = os.path.join(root, "images")  # image IDs the pod uses, one per line
        self.lock = os.path.join(root, "lock")  # held by nspawn while the pod runs
        # held by the nspod that starts the pod, from before its move to run/ until it ends (and
        # inherited by nspawn through pod@'s exec): with ``lock``, what makes a pod "running"
        self.starting = os.path.join(root, "starting")
        self.created = os.path.join(root, "created")
        self.started = os.path.join(root, "started")  # written by stage1 when it starts the pod
        self.status = os.path.join(root, "status")  # status/<app>: exit code, written inside the pod
        self.unit = os.path.join(root, "unit")  # the host unit's name
        # pod@'s $INVOCATION_ID: its journal lines' _SYSTEMD_INVOCATION_ID (a unit file has no POD_UUID)
        self.invocation = os.path.join(root, "invocation")
        self.stage1 = os.path.join(root, "stage1", "rootfs")  # the tree nspawn boots
        self.overlay = os.path.join(root, "overlay")  # overlay/<app>/{upper,work}
        self.io = os.path.join(root, "io")  # a foreground pod's stdio sockets (stage1/stdio.py)
        # each app's effective confinement, as stage1 applies it (written with the stage1 tree)
        self.profile = os.path.join(root, "profile.json")
        # the pod's networks as stage1 attached them (stage1/network.py): name, interface, CNI result
        self.net = os.path.join(root, "net.json")
        # the apps' AC_METADATA_URL while the pod runs (its token is a secret: root's alone)
        self.mds_url = os.path.join(root, "mds-url")
        # what it registered with the metadata service (root's alone): a restarted service reads it
        self.mds_registration = os.path.join(root, "mds-registration.json")

    def app_signal(self, app: str) -> str:
        """status/<app>.signal: the signal that ended the app, by number (its reaper writes it
        before status/<app>, which then holds 128 + the number, as a shell's ``$?``)."""
        return os.path.join(self.status, app + ".signal")

    def image_manifest(self, app: str) -> str:
        """The app's image manifest as stored (for the metadata service), written by stage0."""
        return os.path.join(self.root, "apps", app, "manifest")

    def layers(self, app: str) -> str:
        """The app's writable layer: ``upper/`` and the overlay's ``work/``."""
        return os.path.join(self.overlay, app)

    def upper(self, app: str) -> str:
        return os.path.join(self.layers(app), "upper")

    def volume(self, name: str) -> str:
        """Where an empty volume lives (removed with the pod)."""
        return os.path.join(self.root, "volumes", name)
