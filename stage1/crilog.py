"""The log file of a CRI container (an app with ``log_path``), as units of its pod (pure).

kubelet reads a container's output from a file in its own format (``<RFC3339Nano> stdout|stderr
F|P <line>``), beside which nspod keeps the journal. The writer lives in the pod, one small
process per such app (``cri-log-<app>.service``, ``stage1/scripts/cri_log.py``): it outlives the
CRI service's restarts the way the app does, and it sees stdout and stderr apart, which the
journal does not record. The host directory of the file is bound into the pod's own tree at
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


def writer_unit_name(app: str) -> str:
    return f"cri-log-{app}.service"


def log_dir(app: AppSpec) -> str:
    """Where the pod sees the directory of the app's log file."""
    return FILES.format(app=app.name)


def app_log_stdio(app: AppSpec) -> list[tuple[str, str]]:
    """The app's stdout and stderr to its writer, apart (systemd connects ``file:`` to a socket)."""
    return [
        ("StandardOutput", f"file:{SOCKETS}/{app.name}.out"),
        ("StandardError", f"file:{SOCKETS}/{app.name}.err"),
    ]


def app_log_dependencies(app: AppSpec) -> list[tuple[str, str]]:
    """The writer listens before the app starts (it says READY=1 once it does)."""
    return [("Requires", writer_unit_name(app.name)), ("After", writer_unit_name(app.name))]


def writer_unit(app: AppSpec) -> list[Entry]:
    target = os.path.join(log_dir(app), os.path.basename(app.log_path))
    unit = section(
        "Unit",
        ("Description", f"CRI log of {app.name}"),
        ("DefaultDependencies", "no"),
        ("After", "systemd-journald.service"),
        ("RequiresMountsFor", log_dir(app)),
        ("Conflicts", "shutdown.target"),
        ("Before", "shutdown.target"),
    )
    service = section(
        "Service",
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", command(("/usr/bin/python3", "-I", "-S", WRITER, app.name, target))),
        ("Restart", "no"),
        # it ends by itself once the app's streams end; stopped, it drains them for up to 2 s
        ("TimeoutStopSec", "5s"),
        ("StandardOutput", "journal"),
    )
    return unit + service
