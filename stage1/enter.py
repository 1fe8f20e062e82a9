"""``enter``: a command run in a running pod's app as the app itself runs — its root and mounts,
user and groups, capabilities, seccomp filter, NoNewPrivileges, hidden kernel paths, devices and
limits (stage1/app_unit.py ``profile``) — as a transient unit of the pod's own systemd, started
through machined (``systemd-run --machine``). rkt's enter gave every command the pod's full root
(CVE-2019-10144/10145/10147); ``machinectl shell`` stays the administrator's way in.

The command gets a cgroup of its own next to the app's, with the app's limits (a unit cannot join
another unit's cgroup), and a mount namespace set up as the app's is.
"""

from __future__ import annotations

import os

from stage1.abi import DEFAULT_PATH, AppSpec, Error, PodPaths, PodSpec
from stage1.app_unit import pod_etc, profile
from stage1.pidns import widened, wrapped
from stage1.volumes import MOUNT_VOLUMES

SYSTEMD_RUN = "/usr/bin/systemd-run"
# what sets up a mount namespace of the command's own, or who it runs as: left to mount-volumes
# --enter for a command that joins its app's namespace
OWN_NAMESPACE = frozenset({
    "MountAPIVFS", "RootDirectory", "WorkingDirectory", "User", "Group", "SupplementaryGroups",
    "BindPaths", "BindReadOnlyPaths", "TemporaryFileSystem", "InaccessiblePaths", "ReadOnlyPaths",
    "ReadWritePaths", "ProtectSystem", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups",
})  # fmt: skip


def joined(
    app: AppSpec, main: int, command: list[str], settings: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """A privileged app's command in the app's own mount namespace (``main``: its main process in
    the pod), which a privileged app may change after its start (a mount of its own, what a
    bidirectional volume brings): the settings less those of a namespace of the command's own,
    and the command behind mount-volumes --enter. Another app's namespace cannot change (it may
    not mount), so a namespace systemd sets up as the app's is the app's: no filter or bounding
    set is to be kept here, which a command joining a namespace itself would have to load."""
    groups = ",".join(map(str, app.supplementary_gids))
    enter = [MOUNT_VOLUMES, "--enter", str(main), str(app.user), str(app.group), groups]
    return (
        [(k, v) for k, v in settings if k not in OWN_NAMESPACE],
        [*enter, app.working_directory or "/", "--", *command],
    )


def enter_argv(
    spec: PodSpec,
    app: str,
    command: list[str],
    *,
    tty: bool,
    hidden: tuple[str, ...],
    leader: int = 0,
    term: str = "dumb",
    unit: str = "",
    main: int = 0,
) -> list[str]:
    """systemd-run's command line; the command's exit status is systemd-run's. Without ``tty``
    the caller's stdin, stdout and stderr are the command's, through machined's bus. With it, the
    caller's terminal is relayed to a pty the pod allocates: systemd-run --pty --machine= ends at
    once in systemd 252 (silently, exit 1), so systemd-run itself runs in the pod's namespaces
    (those of ``leader``, the pod's systemd) and asks the pod's systemd locally. ``main``: the app's
    main process in the pod, whose PID namespace an app with its own has the command join, and
    whose mount namespace a privileged app's command joins (:func:`joined`)."""
    chosen = spec.app(app)
    settings = profile(chosen, hidden, pod_etc(spec), host_ipc=spec.host_ipc)
    command = list(wrapped(chosen, settings, tuple(command or ["/bin/sh"]), join=main))
    settings = widened(chosen, settings)
    if main and chosen.privileged:
        settings, command = joined(chosen, main, command, settings)
    where = ["/usr/bin/nsenter", f"--target={leader}", "--all"] if tty else []
    machine = "" if tty else spec.machine
    return [*where, *entered_argv(app, settings, command, tty=tty, term=term, unit=unit, machine=machine)]


def entered_argv(
    app: str,
    settings: list[tuple[str, str]],
    command: list[str],
    *,
    tty: bool,
    term: str,
    unit: str,
    machine: str,
) -> list[str]:
    """systemd-run waiting on ``command`` in a transient unit of ``settings`` (a pod's app's, through
    machined's bus to ``machine``; or a fly app's, on the host's systemd)."""
    argv = [
        SYSTEMD_RUN,
        *([f"--machine={machine}"] if machine else []),
        "--quiet",
        "--wait",
        "--collect",
        "--service-type=exec",
        "--pty" if tty else "--pipe",
        f"--description=nspod enter {app}",
        *([f"--unit={unit}"] if unit else []),
        # systemd-run's -p reads a unit file's quoting but expands no specifiers: undo their doubling
        *(f"--property={key}={value.replace('%%', '%')}" for key, value in settings),
    ]
    if tty:
        argv.append(f"--setenv=TERM={term}")
    return [*argv, "--", *command]


def check_command(paths: PodPaths, app: AppSpec, name: str) -> None:
    """Refuse a command the app's root does not hold (its image, or what the app wrote since), with
    a message: systemd would only exit 203. Links are not followed: they point into the app's root."""
    candidates = [name] if "/" in name else [f"{d}/{name}" for d in DEFAULT_PATH.split(":")]
    for layer in (paths.upper(app.name), app.rootfs, *app.lower):  # an OCI image's layers too
        if any(os.path.lexists(layer + "/" + c.lstrip("/")) for c in candidates):
            return
    raise Error(
        f"app {app.name} has no command {name!r}",
        hint="give a program in the app's image (absolute, or found on its PATH)",
    )


def app_main_pid(machine: str, app: str) -> int:
    """The app's main process in the pod (nspod-pidns, whose children are in the app's PID namespace)."""
    from stage1.systemd import Systemd  # the bus: only for a running pod's commands

    with Systemd(machine) as pod:
        pid = pod.status(f"{app}.service").main_pid
    if not pid:
        raise Error(f"app {app} is not running", hint="start it first: a command joins its PID namespace")
    return pid


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """``enter``'s options and its command, split at the first ``--`` (ABI.md): argparse's REMAINDER
    after a positional would take ``--app NAME`` for the command's first words."""
    if "--" not in argv or "enter" not in argv[: argv.index("--")]:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]
