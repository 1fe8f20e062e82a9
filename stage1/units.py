"""The files of a pod's stage1 tree, as data: systemd units for each app, reapers, the pod target.

Inside the pod the host's systemd boots from the host's ``/usr`` (bound read-only). Each app is
``<app>.service`` with ``RootDirectory=/opt/stage2/<app>/rootfs``; ``reaper-<app>.service`` records
the app's exit status in ``/nspod/status/<app>`` when it ends, and the first app to fail ends the
pod with its exit code (rkt's rule). When every app has ended, ``shutdown.service`` ends the pod.
"""

from __future__ import annotations

from dataclasses import dataclass

from stage1.abi import APP_ROOT, DEFAULT_PATH, AppSpec, PodSpec
from stage1.accounts import PAM, group, passwd
from stage1.escape import assignment, command, path
from stage1.stdio import Stdio, app_stdio

JOURNAL_STDIO = tuple(app_stdio(Stdio.JOURNAL, 0))

STATUS_DIR = "/nspod/status"

# Units a pod never needs: masking them keeps the boot short and leaves the host alone.
MASKED = (
    "systemd-journal-flush.service",
    "systemd-sysusers.service",
    "systemd-remount-fs.service",
    "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
    "systemd-random-seed.service",
    "systemd-machine-id-commit.service",
    "ldconfig.service",
    "systemd-hwdb-update.service",
    "systemd-journal-catalog-update.service",
    "systemd-update-done.service",
    "systemd-firstboot.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.timer",
    "console-getty.service",
    "getty.target",
    "systemd-logind.service",
    "systemd-pstore.service",
    "systemd-binfmt.service",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "systemd-resolved.service",
    "systemd-networkd.service",
    "systemd-timesyncd.service",
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "cron.service",
    "e2scrub_all.timer",
    "fstrim.timer",
    "man-db.timer",
)

REAPER = """#!/bin/sh
# reaper APP: record the app's exit status; the first app to fail ends the pod with its code.
# Let journald finish reading the app's output before the pod may end (alongside the status query):
# --sync makes it handle what is pending (a stream it has not accepted yet), then it drops each
# stream's file once read to the end.
/usr/bin/journalctl --sync 2>/dev/null &
status=$(/usr/bin/systemctl show --property=ExecMainStatus --value "$1.service")
wait
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    /usr/bin/grep -qs "^UNIT=$1.service$" /run/systemd/journal/streams/* || break
    /usr/bin/sleep 0.05
done
echo "$status" > "/nspod/status/$1.tmp" && /usr/bin/mv "/nspod/status/$1.tmp" "/nspod/status/$1"
[ "$status" = 0 ] && exit 0
# an app stopped because the pod is shutting down (systemctl stop, another app's failure) has not failed
[ "$(/usr/bin/systemctl is-system-running 2>/dev/null)" = stopping ] && exit 0
if /usr/bin/mkdir /run/nspod-exit-code 2>/dev/null; then
    exec /usr/bin/systemctl exit "$status"
fi
"""

# No generator has work in a pod (no fstab, getty, sysv scripts…); running them costs ~60 ms a boot.
# PID 1 searches this empty directory instead ($SYSTEMD_GENERATOR_PATH, set by nspawn_argv).
GENERATORS = "/nspod/generators"

HOST_NOTIFY = "/run/nspod/host-notify"  # the host manager's notify socket, bound into the pod

REPORT = """#!/usr/bin/python3
# report APP COUNT: APP has started (and said READY=1 if it speaks sd_notify); tell the host unit
# how many of the pod's COUNT apps are ready, as its STATUS=.
# report --ended: every app has ended. Say READY=1 in case the pod ends before its boot completed
# (when the pod's systemd would have said it): a unit that never said it fails with 'protocol'.
import os, socket, struct, sys

if sys.argv[1:] == ["--ended"]:
    message = b"READY=1"
else:
    os.makedirs("/run/nspod-ready", exist_ok=True)
    open(f"/run/nspod-ready/{sys.argv[1]}", "w").close()
    message = f"STATUS={len(os.listdir('/run/nspod-ready'))}/{sys.argv[2]} apps ready".encode()
# sent in the name of the pod's PID 1: the host manager attributes a message by its sender's PID,
# looked up when it reads the message, and this script may be gone by then; PID 1 lasts the pod
credentials = (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("3i", 1, 0, 0))
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    try:
        sock.sendmsg([message], [credentials], 0, "/run/nspod/host-notify")
    except OSError:
        pass  # no host manager listening (a pod run outside systemd): nothing to report
"""


def ready_unit(app: AppSpec, count: int) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description=Report {app.name} ready",
            "DefaultDependencies=no",
            f"After={app.name}.service",
            f"Requisite={app.name}.service",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart=/nspod/bin/report {app.name} {count}",
            "",
        ]
    )


@dataclass(frozen=True, slots=True)
class Socket:
    """A socket the pod's unit inherited (systemd socket activation), and the app that gets it."""

    app: str
    name: str  # FileDescriptorName=, which nspawn does not pass on: we carry it ourselves
    listen: str  # ListenStream=, ListenDatagram= or ListenSequentialPacket=
    address: str

    @property
    def unit(self) -> str:
        return f"{self.app}-{self.name}.socket"


def assign_sockets(spec: PodSpec, inherited: list[tuple[str, str, str]]) -> list[Socket]:
    """Give each inherited (name, listen kind, address) to the app with a socket-activated port of
    that name, else to the first app with any socket-activated port, else to the first app."""
    fallback = next((a.name for a in spec.apps if a.sockets), spec.apps[0].name)
    sockets = []
    for index, (name, listen, address) in enumerate(inherited):
        owner = next((a.name for a in spec.apps if name in a.sockets), fallback)
        sockets.append(Socket(owner, name or f"fd{3 + index}", listen, address))
    return sockets


def socket_unit(socket: Socket) -> str:
    # the pod's systemd adopts the inherited fd whose address matches, instead of binding anew
    return "\n".join(
        [
            "[Unit]",
            f"Description=Socket {socket.name} of {socket.app}",
            "DefaultDependencies=no",
            "",
            "[Socket]",
            f"{socket.listen}={socket.address}",
            f"FileDescriptorName={socket.name}",
            f"Service={socket.app}.service",
            "",
        ]
    )


@dataclass(frozen=True, slots=True)
class TreeFile:
    content: str
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Tree:
    """What stage1 writes into the stage1 root: files, symlinks and directories (relative paths)."""

    files: dict[str, TreeFile]
    links: dict[str, str]
    dirs: tuple[str, ...]


# The host kernel is out of every app's reach, whatever mounts its /proc and /sys: systemd's
# MountAPIVFS= gives the app a fresh procfs, writable unless these make /proc/sys, /sys and the other
# kernel knobs read-only (or inaccessible) in the app's own mount namespace.
KERNEL_PROTECTION = (
    "ProtectKernelTunables=yes",  # /proc/sys, /proc/sysrq-trigger, /sys, … read-only
    "ProtectKernelModules=yes",  # no module loading, /usr/lib/modules hidden
    "ProtectKernelLogs=yes",  # no /dev/kmsg, /proc/kmsg, syslog(2)
    "ProtectControlGroups=yes",  # /sys/fs/cgroup read-only
)
# Capabilities that would let an app undo the read-only mounts above (mount, umount, a new procfs),
# dropped unless an isolator retains them on purpose. The full default profile is rkt's (#11).
UNSAFE_CAPABILITIES = ("CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO")


def limits(app: AppSpec) -> list[str]:
    """appc isolators, as the app unit's settings."""
    lines = []
    if app.memory_max is not None:
        lines.append(f"MemoryMax={app.memory_max}")
    if app.cpu_quota is not None:
        lines.append(f"CPUQuota={app.cpu_quota}%")
    if app.capabilities is not None:
        lines.append(f"CapabilityBoundingSet={' '.join(app.capabilities)}")
    removed = (*(UNSAFE_CAPABILITIES if app.capabilities is None else ()), *app.capabilities_removed)
    if removed:
        lines.append(f"CapabilityBoundingSet=~{' '.join(dict.fromkeys(removed))}")
    if app.no_new_privileges:
        lines.append("NoNewPrivileges=yes")
    return lines


def app_unit(app: AppSpec, sockets: tuple[str, ...] = (), stdio: tuple[str, ...] = JOURNAL_STDIO) -> str:
    env = [("PATH", DEFAULT_PATH), ("AC_APP_NAME", app.name), *app.env]
    lines = [
        "[Unit]",
        f"Description=Application {app.name}",
        "DefaultDependencies=no",
        f"Wants=reaper-{app.name}.service ready-{app.name}.service",
        *([f"Requires={' '.join(sockets)}", f"After={' '.join(sockets)}"] if sockets else []),
        # journald must have accepted the app's output stream before the app can end (see the reaper)
        "After=systemd-journald.service",
        # stop (and run post-stop handlers) before systemd unmounts the app's root at shutdown
        f"RequiresMountsFor={APP_ROOT.format(app=app.name)}",
        "Conflicts=shutdown.target",  # what DefaultDependencies would add: the pod's end stops the app
        "Before=shutdown.target",
        "",
        "[Service]",
        f"Type={'notify' if app.notify else 'exec'}",
        "MountAPIVFS=yes",  # /proc, /sys, /dev in the app's root (appc's OS-SPEC)
        # the app's READY=1 goes to the pod's systemd through its socket, bound into the app's root
        *(["NotifyAccess=main", "BindPaths=/run/systemd/notify"] if app.notify else []),
        f"RootDirectory={APP_ROOT.format(app=app.name)}",
        f"WorkingDirectory={path(app.working_directory)}",
        f"User={app.user}",
        f"Group={app.group}",
        *(
            [f"SupplementaryGroups={' '.join(map(str, app.supplementary_gids))}"]
            if app.supplementary_gids
            else []
        ),
        *(f"Environment={assignment(k, v)}" for k, v in dict(env).items()),
        *KERNEL_PROTECTION,
        *limits(app),
        *(f"ExecStartPre={command(c)}" for c in app.pre_start),
        f"ExecStart={command(app.exec)}",
        *(f"ExecStopPost={command(c)}" for c in app.post_stop),
        *stdio,
        f"SyslogIdentifier={app.name}",
        *([f"Sockets={' '.join(sockets)}"] if sockets else []),
        "Restart=no",
        "TimeoutStartSec=0",
        f"TimeoutStopSec={app.stop_timeout:g}s",  # then SIGKILL
        "",
    ]
    return "\n".join(lines)


def reaper_unit(app: AppSpec) -> str:
    return "\n".join(
        [
            "[Unit]",
            f"Description=Exit status of {app.name}",
            "DefaultDependencies=no",
            "StopWhenUnneeded=yes",
            "Wants=shutdown.service",
            "After=shutdown.service",
            f"Before={app.name}.service",  # so it stops after the app: the status is final then
            "Conflicts=shutdown.target",
            "Before=shutdown.target",
            f"RequiresMountsFor={STATUS_DIR}",  # record the status before the status dir goes away
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            "ExecStart=/usr/bin/true",
            f"ExecStop=/nspod/bin/reaper {app.name}",
            "",
        ]
    )


SHUTDOWN_UNIT = """[Unit]
Description=End the pod when its last app has ended
DefaultDependencies=no
StopWhenUnneeded=yes
# every app and its reaper has stopped by now: what is left (journald, mounts) needs no orderly
# stop, it ends with the pod's namespaces; an exit code a failing app set stays
SuccessAction=exit-force

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStop=/nspod/bin/report --ended
"""


def pod_target(spec: PodSpec) -> str:
    wants = " ".join(f"{a.name}.service" for a in spec.apps)
    return "\n".join(
        [
            "[Unit]",
            f"Description=Pod {spec.machine}",
            f"Wants={wants} systemd-journald.service dbus.socket",
            f"After={wants}",
            "AllowIsolate=yes",
            "",
        ]
    )


# nspawn picks the pod's cgroup layout by the systemd version it finds in the tree's /usr, before the
# host's /usr is bound over it. Found none, it falls back to the legacy v1 layout, where a systemd in a
# container gets no cgroup-empty events: a stop then waits for an app's last process by chance and
# can sit out the whole stop timeout. This empty stand-in names the host's version (which is the
# systemd that boots), so the pod gets the host's own layout: hybrid on v1 hosts, unified on v2.
SYSTEMD_MARKER = "usr/lib/systemd/libsystemd-shared-{version}.so"


def tree(
    spec: PodSpec,
    sockets: list[Socket] | None = None,
    *,
    systemd_version: int = 252,
    stdio: Stdio = Stdio.JOURNAL,
) -> Tree:
    """Everything stage1 puts into the stage1 root for ``spec`` (pure); ``sockets``: inherited fds;
    ``systemd_version``: the host's, which boots the pod; ``stdio``: where the apps read and write."""
    units = "etc/systemd/system"
    files: dict[str, TreeFile] = {
        SYSTEMD_MARKER.format(version=systemd_version): TreeFile(""),
        "etc/os-release": TreeFile('ID=nspod-stage1\nNAME="nspod stage1"\n'),
        "etc/machine-id": TreeFile(""),  # filled from --uuid by nspawn
        "etc/hostname": TreeFile(spec.hostname + "\n"),
        "etc/hosts": TreeFile(f"127.0.0.1 localhost {spec.hostname}\n::1 localhost {spec.hostname}\n"),
        "etc/passwd": TreeFile(passwd(spec)),
        "etc/group": TreeFile(group(spec)),
        "etc/pam.d/login": TreeFile(PAM),
        "etc/pam.d/other": TreeFile(PAM),
        "nspod/bin/reaper": TreeFile(REAPER, 0o755),
        "nspod/bin/report": TreeFile(REPORT, 0o755),
        f"{units}/pod.target": TreeFile(pod_target(spec)),
        f"{units}/shutdown.service": TreeFile(SHUTDOWN_UNIT),
    }
    for socket in sockets or []:
        files[f"{units}/{socket.unit}"] = TreeFile(socket_unit(socket))
    if sockets:
        # systemd offers inherited fds only to units loaded while it enumerates at start-up: -.mount
        # always is, and what it names is loaded with it, so the socket units get their fds
        wants = " ".join(s.unit for s in sockets)
        files[f"{units}/-.mount.d/nspod-sockets.conf"] = TreeFile(f"[Unit]\nWants={wants}\n")
    for index, app in enumerate(spec.apps):
        mine = tuple(s.unit for s in sockets or [] if s.app == app.name)
        files[f"{units}/{app.name}.service"] = TreeFile(app_unit(app, mine, tuple(app_stdio(stdio, index))))
        files[f"{units}/reaper-{app.name}.service"] = TreeFile(reaper_unit(app))
        files[f"{units}/ready-{app.name}.service"] = TreeFile(ready_unit(app, len(spec.apps)))
    links = {
        "bin": "usr/bin",
        "sbin": "usr/sbin",
        "lib": "usr/lib",
        "lib64": "usr/lib64",
        f"{units}/default.target": "pod.target",
        **{f"{units}/{m}": "/dev/null" for m in MASKED},
    }
    dirs = (
        "usr",
        "var",
        "tmp",
        "run",
        "proc",
        "sys",
        "dev",
        "root",
        STATUS_DIR.lstrip("/"),
        "run/nspod",
        GENERATORS.lstrip("/"),
        *(APP_ROOT.format(app=a.name).lstrip("/") for a in spec.apps),
    )
    return Tree(files, links, dirs)
