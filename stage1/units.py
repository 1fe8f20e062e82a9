"""The files of a pod's stage1 tree, as data: the pod target, the units of each app
(stage1/app_unit.py), inherited sockets, accounts and the scripts every pod carries.

Inside the pod the host's systemd boots from the host's ``/usr`` (bound read-only). When every app
has ended, ``shutdown.service`` ends the pod.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from stage1.abi import APP_ROOT, Error, PodSpec
from stage1.accounts import PAM, group, passwd
from stage1.app_unit import (
    HIDDEN,
    POD_ETC,
    STATUS_DIR,
    USERNS_LAYERS,
    app_unit,
    pod_etc,
    ready_unit,
    reaper_unit,
)
from stage1.crilog import (
    WRITER,
    has_writer,
    socket_unit_name,
    stdio_socket_unit,
    writer_unit,
    writer_unit_name,
)
from stage1.escape import command, path, unit_path
from stage1.health import health_files
from stage1.pidns import BUILT, HELPER_IN_POD, needs_helper
from stage1.stdio import Stdio
from stage1.unitfile import Entry, render, section
from stage1.volumes import MOUNT_VOLUMES, has_volumes_unit, volumes_unit, volumes_unit_name

_APP_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

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
    # nothing in a pod asks for passwords; each path unit holds an inotify instance, of which
    # root may hold 8192 (units/sysctl.d/60-nspod.conf; the kernel's default 128) for all pods
    "systemd-ask-password-console.path",
    "systemd-ask-password-wall.path",
    "proc-sys-fs-binfmt_misc.automount",
)


def script(name: str) -> str:
    """One of the programs stage1 puts into every pod (``stage1/scripts/``: files the linters see)."""
    return resources.files("stage1").joinpath("scripts", name).read_text()


# No generator has work in a pod (no fstab, getty, sysv scripts…); running them costs ~60 ms a boot.
# PID 1 searches this empty directory instead ($SYSTEMD_GENERATOR_PATH, set by nspawn_argv).
GENERATORS = "/nspod/generators"

HOST_NOTIFY = "/run/nspod/host-notify"  # the host manager's notify socket, bound into the pod


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


def socket_unit(socket: Socket) -> list[Entry]:
    # the pod's systemd adopts the inherited fd whose address matches, instead of binding anew
    unit = section(
        "Unit", ("Description", f"Socket {socket.name} of {socket.app}"), ("DefaultDependencies", "no")
    )
    return unit + section(
        "Socket",
        (socket.listen, socket.address),
        ("FileDescriptorName", socket.name),
        ("Service", f"{socket.app}.service"),
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
    programs: dict[str, str] = field(default_factory=dict)  # copies of the host's built ones (if built)


# The pod's journal is what `journalctl -M` reads; everything in it also reaches the host's journal
# (the apps' console, stage1/stdio.py), where `nspod logs` reads it. journald would grow a runtime
# journal in 8 MiB steps of the pod's tmpfs /run, charged to the pod: most of an idle pod's memory.
# Its smallest file instead, and room for one more (older lines stay in the host's journal).
JOURNALD = section(
    "Journal", ("Storage", "volatile"), ("RuntimeMaxFileSize", "512K"), ("RuntimeMaxUse", "1M")
)


# every app and its reaper has stopped by now: what is left (journald, mounts) needs no orderly
# stop, it ends with the pod's namespaces; an exit code a failing app set stays
SHUTDOWN_UNIT = section(
    "Unit",
    ("Description", "End the pod when its last app has ended"),
    ("DefaultDependencies", "no"),
    ("StopWhenUnneeded", "yes"),
    ("SuccessAction", "exit-force"),
) + section("Service", ("Type", "oneshot"), ("RemainAfterExit", "yes"))

# READY=1 as the last app ends (report --ended: a Python start), wanted by the reapers as
# shutdown.service is but not ordered against them: it runs beside the last reaper, not after it
ENDED_UNIT = section(
    "Unit",
    ("Description", "Say the pod is ready as its last app ends"),
    ("DefaultDependencies", "no"),
    ("StopWhenUnneeded", "yes"),
    ("After", "shutdown.service"),  # stops before it (the reverse of start order): READY=1, then the end
) + section(
    "Service", ("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStop", "/nspod/bin/report --ended")
)


def sysctl_unit(spec: PodSpec) -> list[Entry]:
    """The pod's kernel settings (os/unix/sysctl), set before the apps that ask for them start."""
    # stage0 refused differing values; the pod's own (an app sandbox's) hold for every app
    settings = dict((*spec.sysctl, *(s for app in spec.apps for s in app.sysctl)))
    return section(
        "Unit", ("Description", "The pod's kernel settings"), ("DefaultDependencies", "no")
    ) + section(
        "Service",
        ("Type", "oneshot"),
        ("RemainAfterExit", "yes"),
        ("PrivateMounts", "yes"),
        ("ExecStart", command(("/nspod/bin/sysctl", *(f"{k}={v}" for k, v in sorted(settings.items()))))),
    )


def userns_mounts(spec: PodSpec) -> dict[str, list[Entry]]:
    """With --private-users, the pod's systemd mounts each app's root itself, an overlay of the
    ID-mapped image tree and the writable layer nspawn binds in (stage1/nspawn/service.py userns_apps);
    the app's unit requires it (RequiresMountsFor=). Its volumes go on as every pod's do
    (stage1/volumes.py): a mount unit's Where= is resolved in the pod's root, not the app's."""
    units: dict[str, list[Entry]] = {}
    for app in spec.apps:
        base, root = USERNS_LAYERS.format(app=app.name), APP_ROOT.format(app=app.name)
        lowers = ":".join([f"{base}/lower", *(f"{base}/lower{i}" for i in range(1, len(app.lower) + 1))])
        layers = f"lowerdir={lowers},upperdir={base}/layers/upper,workdir={base}/layers/work,userxattr"
        units[f"{unit_path(root)}.mount"] = section(
            "Unit", ("Description", f"{app.name}'s root"), ("DefaultDependencies", "no")
        ) + section(
            "Mount", ("What", "overlay"), ("Where", path(root)), ("Type", "overlay"), ("Options", layers)
        )
    return units


def pod_target(spec: PodSpec) -> list[Entry]:
    wants = " ".join(f"{a.name}.service" for a in spec.apps)
    # the pod's own kernel settings are in place before the pod is ready for apps to join
    pod_wide = " sysctl.service" if spec.sysctl else ""
    return section(
        "Unit",
        ("Description", f"Pod {spec.machine}"),
        ("Wants", f"{wants} systemd-journald.service dbus.socket{pod_wide}"),
        ("After", f"{wants}{pod_wide}"),
        ("AllowIsolate", "yes"),
    )


# nspawn picks the pod's cgroup layout by the systemd version it finds in the tree's /usr, before the
# host's /usr is bound over it. Found none, it falls back to the legacy v1 layout, where a systemd in a
# container gets no cgroup-empty events: a stop then waits for an app's last process by chance and
# can sit out the whole stop timeout. This empty stand-in names the host's version (which is the
# systemd that boots), so the pod gets the host's own layout: hybrid on v1 hosts, unified on v2.
SYSTEMD_MARKER = "usr/lib/systemd/libsystemd-shared-{version}.so"


def app_files(
    spec: PodSpec,
    name: str,
    sockets: list[Socket] | None = None,
    *,
    stdio: Stdio = Stdio.JOURNAL,
    hidden: tuple[str, ...] = HIDDEN,
) -> dict[str, TreeFile]:
    """The unit files of one app of the pod: at boot for every app, later for one added to an app
    sandbox (stage1/nspawn/apps.py)."""
    units = "etc/systemd/system"
    index, app = next((i, a) for i, a in enumerate(spec.apps) if a.name == name)
    mine = tuple(s.unit for s in sockets or [] if s.app == app.name)
    volumes = {
        f"{units}/{volumes_unit_name(app.name)}": TreeFile(render(volumes_unit(app, sandbox=spec.sandbox)))
    }
    writer = {
        f"{units}/{writer_unit_name(app.name)}": TreeFile(render(writer_unit(app))),
        f"{units}/{socket_unit_name(app.name)}": TreeFile(render(stdio_socket_unit(app))),
    }
    health = {name: TreeFile(text, mode) for name, (text, mode) in health_files(spec, app, hidden).items()}
    return (
        health
        | (volumes if has_volumes_unit(app) else {})
        | (writer if has_writer(app) else {})
        | {
            f"{units}/{app.name}.service": TreeFile(
                render(app_unit(app, mine, stdio, index, hidden, pod_etc(spec), host_ipc=spec.host_ipc))
            ),
            f"{units}/reaper-{app.name}.service": TreeFile(
                render(reaper_unit(app, sandbox=spec.sandbox, relayed=stdio.relayed))
            ),
        }
        | (
            {}
            if has_writer(app)
            else {f"{units}/ready-{app.name}.service": TreeFile(render(ready_unit(app, len(spec.apps))))}
        )
    )


def tree(
    spec: PodSpec,
    sockets: list[Socket] | None = None,
    *,
    systemd_version: int = 252,
    stdio: Stdio = Stdio.JOURNAL,
    hidden: tuple[str, ...] = HIDDEN,
) -> Tree:
    """Everything stage1 puts into the stage1 root for ``spec`` (pure); ``sockets``: inherited fds;
    ``systemd_version``: the host's, which boots the pod; ``stdio``: where the apps read and write;
    ``hidden``: the kernel paths to hide from apps that the host has (stage1/app_unit.py)."""
    units = "etc/systemd/system"
    for app in spec.apps:  # names become unit and directory names: nothing else may pass
        if not _APP_NAME.fullmatch(app.name):
            raise Error(
                f"bad app name {app.name!r}",
                hint="app names are AC names: lowercase letters, digits, dashes",
            )
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
        "nspod/bin/reaper": TreeFile(script("reaper.sh"), 0o755),
        "nspod/bin/report": TreeFile(script("report.py"), 0o755),
        WRITER.lstrip("/"): TreeFile(script("cri_log.py"), 0o755),  # an app sandbox's apps may need it later
        "nspod/bin/unit_exit.py": TreeFile(script("unit_exit.py"), 0o644),  # the writer's module
        MOUNT_VOLUMES.lstrip("/"): TreeFile(script("mount_volumes.py"), 0o755),
        f"{units}/pod.target": TreeFile(render(pod_target(spec))),
        "etc/systemd/journald.conf.d/nspod.conf": TreeFile(render(JOURNALD)),
        f"{units}/shutdown.service": TreeFile(render(SHUTDOWN_UNIT)),
        f"{units}/ended.service": TreeFile(render(ENDED_UNIT)),
    }
    for name, text in (("resolv.conf", spec.resolv_conf), ("hosts", spec.hosts)):
        if text is not None:
            files[f"{POD_ETC.lstrip('/')}/{name}"] = TreeFile(text)
    if spec.sysctl or any(app.sysctl for app in spec.apps):
        files["nspod/bin/sysctl"] = TreeFile(script("sysctl.sh"), 0o755)
        files[f"{units}/sysctl.service"] = TreeFile(render(sysctl_unit(spec)))
    for socket in sockets or []:
        files[f"{units}/{socket.unit}"] = TreeFile(render(socket_unit(socket)))
    if sockets:
        # systemd offers inherited fds only to units loaded while it enumerates at start-up: -.mount
        # always is, and what it names is loaded with it, so the socket units get their fds
        wants = " ".join(s.unit for s in sockets)
        files[f"{units}/-.mount.d/nspod-sockets.conf"] = TreeFile(render(section("Unit", ("Wants", wants))))
    for name, mount in userns_mounts(spec).items() if spec.private_users is not None else ():
        files[f"{units}/{name}"] = TreeFile(render(mount))
    for app in spec.apps:
        files.update(app_files(spec, app.name, sockets, stdio=stdio, hidden=hidden))
        if not spec.sandbox:  # a sandbox outlives its apps: its reapers want neither unit
            wants = render(section("Unit", ("Wants", "ended.service")))
            files[f"{units}/reaper-{app.name}.service.d/nspod-ended.conf"] = TreeFile(wants)
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
    # a sandbox's apps may need it later
    wants_helper = spec.sandbox or any(needs_helper(app) for app in spec.apps)
    return Tree(files, links, dirs, {HELPER_IN_POD.lstrip("/"): BUILT} if wants_helper else {})
