"""A CRI container's stdio (an app with ``cri_stdio``): its log file (with a ``log_path``), the
FIFOs its stdout and stderr are, attach, as units of its pod (pure).

kubelet reads a container's output from a file in its own format (``<RFC3339Nano> stdout|stderr
F|P <line>``), beside which nspod keeps the journal. The writer lives in the pod, one small
process per such app (``cri-log-<app>.service``, ``stage1/scripts/cri_log.py``): it outlives the
CRI service's restarts the way the app does, and it sees stdout and stderr apart, which the
journal does not record. The app's stdout and stderr are FIFOs, as under containerd (so an app
can open ``/dev/stderr``), which the pod's systemd makes and holds (``cri-log-<app>.socket``,
``ListenFIFO=``) and passes to the writer: a writer that dies loses nothing and the app gets no
SIGPIPE. The same socket unit holds the attach socket (``stage0/cri/attach.py`` connects to it)
and, for a container with stdin, the socket the app's stdin connects to. All of them live in
the pod's own ``/run``, mode 0600, out of every app's reach (an app has only its own
descriptors). The host directory of the file is bound into the pod's own tree at
``/nspod/crilog/<app>`` (machined, as an added app's root is), out of the app's reach.
"""

from __future__ import annotations

import os

from stage1.abi import AppSpec
from stage1.escape import command
from stage1.unitfile import Entry, section

SOCKETS = "/run/nspod/crilog"  # the writer's sockets, in the pod (cri_log.py SOCKETS)
FILES = "/nspod/crilog/{app}"  # the log file's host directory, bound into the pod
WRITER = "/nspod/bin/cri-log"


def has_writer(app: AppSpec) -> bool:
    """A CRI container's (an ABI 8 spec's with a log path too)."""
    return app.cri_stdio or bool(app.log_path)


def writer_unit_name(app: str) -> str:
    return f"cri-log-{app}.service"


def socket_unit_name(app: str) -> str:
    return f"cri-log-{app}.socket"


def stream_path(app: str, stream: str) -> str:
    """``out``, ``err``, ``ctl``, ``ack`` (FIFOs), ``in``, ``attach`` (sockets), ``tty`` (the pty's link)."""
    return f"{SOCKETS}/{app}.{stream}"


def log_dir(app: AppSpec) -> str:
    """Where the pod sees the directory of the app's log file."""
    return FILES.format(app=app.name)


def app_log_stdio(app: AppSpec) -> list[tuple[str, str]]:
    """The app's stdout and stderr: the FIFOs (systemd opens ``file:`` on them); its stdin: a
    connection to the writer's socket (systemd connects ``file:`` to a socket), or /dev/null; with a
    tty, the pty the writer made (tty-force: nothing else should hold it)."""
    if app.tty:
        tty = [("StandardInput", "tty-force"), ("StandardOutput", "tty"), ("StandardError", "tty")]
        return [*tty, ("TTYPath", stream_path(app.name, "tty"))]
    stdin = [("StandardInput", "file:" + stream_path(app.name, "in"))] if app.stdin else []
    return [
        *stdin,
        ("StandardOutput", "file:" + stream_path(app.name, "out")),
        ("StandardError", "file:" + stream_path(app.name, "err")),
    ]


def app_log_dependencies(app: AppSpec) -> list[tuple[str, str]]:
    """The FIFOs exist before the app starts; the writer reads them from the start (it says
    READY=1 once it holds them, and its pty with a tty), and stops after the app. Wanted, not
    required: a writer that dies and comes back must not stop the app."""
    socket, writer = socket_unit_name(app.name), writer_unit_name(app.name)
    return [("Requires", socket), ("Wants", writer), ("After", f"{socket} {writer}")]


def stdio_socket_unit(app: AppSpec) -> list[Entry]:
    # ctl and ack: the reaper asks the writer to drain the output FIFOs and waits for its answer
    streams = ("out", "err", "attach", *(("in",) if app.stdin and not app.tty else ()), "ctl", "ack")
    unit = section(
        "Unit",
        ("Description", f"CRI stdio of {app.name}"),
        ("DefaultDependencies", "no"),
        ("Conflicts", "shutdown.target"),
        ("Before", "shutdown.target"),
    )
    kinds = {"attach": "ListenStream", "in": "ListenStream"}
    listen = [(kinds.get(s, "ListenFIFO"), stream_path(app.name, s)) for s in streams]
    socket = section(
        "Socket",
        *listen,
        ("SocketMode", "0600"),
        ("DirectoryMode", "0700"),
        ("RemoveOnStop", "yes"),
        ("Service", writer_unit_name(app.name)),
        # a writer that keeps dying must not fail the socket (closing the FIFOs under the app)
        ("TriggerLimitIntervalSec", "0"),
    )
    return unit + socket


def writer_unit(app: AppSpec) -> list[Entry]:
    # no log file ("-"): the journal and attach only
    target = os.path.join(log_dir(app), os.path.basename(app.log_path)) if app.log_path else "-"
    flags = (*(("--stdin-once",) if app.stdin_once else ()), *(("--tty",) if app.tty else ()))
    unit = section(
        "Unit",
        ("Description", f"CRI log of {app.name}"),
        ("DefaultDependencies", "no"),
        ("After", "systemd-journald.service"),
        ("RequiresMountsFor", log_dir(app)) if app.log_path else None,
        ("Requires", socket_unit_name(app.name)),
        ("After", socket_unit_name(app.name)),
        ("StartLimitIntervalSec", "0"),
        ("Conflicts", "shutdown.target"),
        ("Before", f"shutdown.target reaper-{app.name}.service"),  # it stops after the reaper it answers
    )
    service = section(
        "Service",
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", command(("/usr/bin/python3", "-I", "-S", WRITER, app.name, target, *flags))),
        ("Sockets", socket_unit_name(app.name)),
        # killed, it comes back at once and reads on where it stopped; its fd store keeps the
        # app's stdin connection and pty across (released only when it is stopped)
        ("Restart", "always"),
        ("RestartSec", "100ms"),
        ("FileDescriptorStoreMax", "2"),
        # stopped with its app's removal or the pod's end: it drains the FIFOs and ends
        ("TimeoutStopSec", "5s"),
        ("StandardOutput", "journal"),
    )
    return unit + service
