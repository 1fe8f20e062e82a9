"""A fly app's host units as data (pure): the app's own unit, its output writer (a socket unit
holding its FIFOs, and the writer) and a command entered into it, each as ``systemd-run``'s
command line.

The app's settings are the very ones an app inside an nspod pod gets (app_unit.profile: root,
user, capabilities, seccomp filter, no_new_privs, masked and read-only paths, limits), with the
host's paths for its root and the pod's /etc files, plus what a host unit needs to be in its
sandbox: the pod's network and IPC namespaces (those of the pod's leader, its systemd), its
volumes bound into its root, its stop with the pod's (``BindsTo=``), and its unit kept once its
process ended (``RemainAfterExit=``; a failed unit stays anyway) so its exit status can be read
and recorded on the host (stage1/hostapps.py; an ``ExecStopPost=`` would run in the app's root,
``+`` or not, and an image may have no shell).
systemd-run reads these unit-file assignments as a unit file would (``-p``), which is how
``enter`` gives a command the same profile; it turns each into the typed D-Bus property of
StartTransientUnit, for the ~40 kinds the profile uses, which stage1/transient.py does not type.
"""

from __future__ import annotations

from dataclasses import dataclass

from stage1.abi import AppSpec, PodSpec
from stage1.app_unit import pod_etc, profile
from stage1.enter import entered_argv
from stage1.escape import quote

SYSTEMD_RUN = "/usr/bin/systemd-run"
PYTHON = "/usr/bin/python3"


@dataclass(frozen=True, slots=True)
class Place:
    """Where a fly app's parts are on the host, and the sandbox it joins."""

    root: str  # the app's root: its overlay, mounted on the host
    etc: str  # the pod's /etc files (resolv.conf, hosts) in the pod's tree
    stdio: str  # the directory of its stdout and stderr FIFOs (a CRI container's log writer's)
    exit: str  # the file its exit is recorded in (by stage1/hostapps.py)
    pod_unit: str  # the sandbox pod's host unit
    leader: int  # the pod's systemd: the namespaces to join are its
    host_network: bool  # the pod has the host's network (--net=host): none to join


def unit_name(spec: PodSpec, app: str) -> str:
    return host_unit(spec.uuid, app)


def host_unit(uuid: str, app: str) -> str:
    """The host unit of app ``app`` of the hostPID sandbox ``uuid``, in the host's system.slice."""
    return f"nspod-fly-{uuid}-{app}.service"


def writer_name(spec: PodSpec, app: str) -> str:
    """Its output writer's units' name, without the suffix: ``.socket`` holds its FIFOs,
    ``.service`` is the writer."""
    return f"nspod-fly-{spec.uuid}-{app}-log"


def fifos(place: Place, app: str) -> tuple[str, str]:
    """The app's stdout and stderr: FIFOs the host's systemd holds (pipes: /dev/stdout opens),
    named as the writer tells them apart (cri_log.py role: by the suffix)."""
    return f"{place.stdio}/{app}.out", f"{place.stdio}/{app}.err"


def namespaces(place: Place, *, host_ipc: bool = False) -> list[tuple[str, str]]:
    net = [] if place.host_network else [("NetworkNamespacePath", f"/proc/{place.leader}/ns/net")]
    if host_ipc:  # the host's, a host unit's own (the CRI's ipc NODE)
        return net
    # systemd 252 joins IPCNamespacePath= only beside PrivateIPC=yes: alone it is ignored, and the
    # app would be in the host's IPC namespace
    return [*net, ("PrivateIPC", "yes"), ("IPCNamespacePath", f"/proc/{place.leader}/ns/ipc")]


def binds(volumes: tuple[tuple[str, str, bool], ...]) -> list[tuple[str, str]]:
    """``volumes``: (host source, target in the app's root, read-only) of each of the app's mounts."""
    return [
        ("BindReadOnlyPaths" if read_only else "BindPaths", quote(f"{source}:{target}", expand_dollar=False))
        for source, target, read_only in volumes
    ]


def settings(
    spec: PodSpec,
    app: AppSpec,
    place: Place,
    volumes: tuple[tuple[str, str, bool], ...],
    hidden: tuple[str, ...],
) -> list[tuple[str, str]]:
    """The app's profile in its sandbox: what its unit and every command entered into it share."""
    own = profile(app, hidden, pod_etc(spec), root=place.root, etc_dir=place.etc)
    return [*own, *namespaces(place, host_ipc=spec.host_ipc), *binds(volumes)]


def _properties(values: list[tuple[str, str]]) -> list[str]:
    # systemd-run's -p reads a unit file's quoting but expands no specifiers: undo their doubling
    return [f"--property={key}={value.replace('%%', '%')}" for key, value in values]


def app_argv(
    spec: PodSpec,
    app: AppSpec,
    place: Place,
    volumes: tuple[tuple[str, str, bool], ...],
    hidden: tuple[str, ...],
) -> list[str]:
    """Starts the app's unit; returns once it runs (Type=exec) or could not be started."""
    out, err = fifos(place, app.name)
    writer = writer_name(spec, app.name) + ".socket"
    own = [
        ("BindsTo", place.pod_unit),
        ("After", place.pod_unit),
        ("Requires", writer),
        ("After", writer),
        *settings(spec, app, place, volumes, hidden),
        # pipes, so /dev/stdout and /dev/stderr open (a socket's cannot: ENXIO), to its writer even
        # without a CRI log file: the journal has its lines then
        ("StandardOutput", f"file:{out}"),
        ("StandardError", f"file:{err}"),
        ("SyslogIdentifier", app.name),
        ("TimeoutStopSec", f"{app.stop_timeout:g}s"),  # then SIGKILL
        *((("KillSignal", app.stop_signal),) if app.stop_signal else ()),
        ("RemainAfterExit", "yes"),
    ]
    return [
        SYSTEMD_RUN,
        "--quiet",
        "--service-type=exec",
        f"--unit={unit_name(spec, app.name)}",
        f"--description=nspod fly app {app.name} of pod {spec.uuid}",
        *_properties(own),
        "--",
        *app.exec,
    ]


def writer_argv(spec: PodSpec, app: AppSpec, place: Place, script: str) -> list[str]:
    """The app's output writer (stage1/scripts/cri_log.py, as in a pod: into its CRI log file, or
    none, and the journal) on the host: a socket unit holding its FIFOs (started here, so they
    exist before the app) and the writer, started by their first data; killed, it comes back and
    reads on, losing nothing (as in a pod, stage1/crilog.py)."""
    fifo = [("ListenFIFO", path) for path in fifos(place, app.name)]
    held = [*fifo, ("SocketMode", "0600"), ("RemoveOnStop", "yes"), ("TriggerLimitIntervalSec", "0")]
    # the socket goes with the pod too: left listening, it would start the writer, which cannot
    # start without the pod, again and again
    held += [("BindsTo", place.pod_unit), ("After", place.pod_unit)]
    return [
        SYSTEMD_RUN,
        "--quiet",
        "--collect",
        "--service-type=notify",
        f"--unit={writer_name(spec, app.name)}",
        f"--description=output of nspod fly app {app.name}",
        *(f"--socket-property={key}={value}" for key, value in held),
        *_properties(
            [
                ("BindsTo", place.pod_unit),
                ("After", place.pod_unit),
                ("Restart", "always"),
                ("RestartSec", "100ms"),
                ("TimeoutStopSec", "5s"),
            ]
        ),
        "--",
        *(PYTHON, "-I", "-S", script, app.name, app.log_path or "-"),  # "-": the journal alone
    ]


def exec_argv(
    spec: PodSpec,
    app: AppSpec,
    place: Place,
    volumes: tuple[tuple[str, str, bool], ...],
    hidden: tuple[str, ...],
    cmd: list[str],
    *,
    tty: bool,
    term: str,
    unit: str,
) -> list[str]:
    """A command run in the app as the app runs (root, namespaces, confinement), as ``enter`` runs
    one in a pod's app; its exit status is systemd-run's."""
    own = [("BindsTo", place.pod_unit), *settings(spec, app, place, volumes, hidden)]
    return entered_argv(app.name, own, cmd or ["/bin/sh"], tty=tty, term=term, unit=unit, machine="")
