"""An app's units inside the pod (entries, stage1/unitfile.py): ``<app>.service`` with
``RootDirectory=/opt/stage2/<app>/rootfs``, its reaper (its exit status to ``/nspod/status/<app>``;
the first app to fail ends the pod with its code, rkt's rule) and its readiness report."""

from __future__ import annotations

import os
from collections.abc import Callable

from stage1.abi import APP_ROOT, DEFAULT_PATH, AppSpec, PodSpec
from stage1.crilog import app_log_dependencies, app_log_stdio, has_writer
from stage1.escape import assignment, command, path, quote
from stage1.kernel_binds import KERNEL_CALLS, bound, by_binds, narrowed
from stage1.namespaces import ipc_settings
from stage1.pidns import widened, wrapped
from stage1.seccomp import syscall_filter
from stage1.stdio import Stdio, app_stdio
from stage1.unitfile import Entry, section
from stage1.volumes import has_volumes_unit, image_masks, volumes_unit_name

STATUS_DIR = "/nspod/status"
USERNS_LAYERS = "/opt/stage2/{app}"  # with --private-users: lower/, layers/{upper,work}/, volumes/N

# The host kernel is out of every app's reach: MountAPIVFS='s fresh procfs is writable unless
# these make /proc/sys, /sys and the other knobs read-only (or hidden) in the app's mount namespace.
KERNEL_PROTECTION = (
    ("ProtectKernelTunables", "yes"),  # /proc/sys, /proc/sysrq-trigger, /sys, … read-only
    ("ProtectKernelModules", "yes"),  # no module loading, /usr/lib/modules hidden
    ("ProtectKernelLogs", "yes"),  # no /dev/kmsg, /proc/kmsg, syslog(2)
    ("ProtectControlGroups", "yes"),  # /sys/fs/cgroup read-only
)
# rkt's default bounding set (14), unless an isolator retains or removes more: without CAP_SYS_ADMIN,
# _MODULE, _RAWIO, _PTRACE, _TIME, _BOOT… no app undoes the mounts above, loads modules or reboots.
DEFAULT_CAPABILITIES = (
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_KILL", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETFCAP",
    "CAP_SYS_CHROOT",
)  # fmt: skip
# rkt's hidden kernel paths, runc's and podman's masked ones: files under /dev/null, directories
# under an empty read-only tmpfs (InaccessiblePaths= does not hold under RootDirectory= with
# MountAPIVFS=, whose fresh /proc and /sys go over it). Only those the host's kernel has are
# named: a mount over a missing /proc file would fail the app's start.
HIDDEN_FILES = (
    "/proc/config.gz",
    "/proc/interrupts",  # per-CPU interrupt counts: a side channel on the host's activity
    "/proc/kallsyms",
    "/proc/kcore",
    "/proc/key-users",
    "/proc/keys",  # the descriptions of every key root holds (a pod's root is the host's)
    "/proc/kmem",
    "/proc/kpagecgroup",  # physical page state: rowhammer and page-cache side channels
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/latency_stats",
    "/proc/mem",
    "/proc/sched_debug",
    "/proc/slabinfo",  # the kernel heap's state, what a heap exploit grooms
    "/proc/timer_list",  # the host's timers, with the names of the processes that set them
    "/proc/timer_stats",
    "/proc/vmallocinfo",
    "/sys/kernel/vmcoreinfo",  # a physical kernel address
)
HIDDEN_DIRS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/scsi",
    "/sys/dev/block",
    "/sys/devices/virtual/powercap",  # energy counters: the PLATYPUS side channel (CVE-2020-8694)
    "/sys/firmware",
    "/sys/fs/selinux",
    "/sys/hypervisor",
    "/sys/module",
    "/sys/power",
)
HIDDEN = HIDDEN_FILES + HIDDEN_DIRS


def hidden_paths(hidden: tuple[str, ...]) -> list[tuple[str, str]]:
    files = [f"/dev/null:{p}" for p in HIDDEN_FILES if p in hidden]
    dirs = [f"{p}:ro" for p in HIDDEN_DIRS if p in hidden]
    return [*([("BindReadOnlyPaths", " ".join(files))] if files else []),
            *([("TemporaryFileSystem", " ".join(dirs))] if dirs else [])]  # fmt: skip


# every capability Linux 6.x knows (capabilities(7)): what "ALL" of the CRI adds or drops
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
ALL = "ALL"


def unfiltered(app: AppSpec) -> bool:
    """No seccomp filter of any kind (the CRI's unconfined, a privileged container): besides the
    app's own filter, none of systemd's settings that load one (RestrictNamespaces=,
    ProtectKernelModules=, ProtectKernelLogs=), their mount parts kept by other means."""
    return app.privileged or app.seccomp_mode == "unconfined"


def bounding_set(app: AppSpec) -> list[tuple[str, str]]:
    """The app's bounding set: nspod's default (or the retain set) with the capabilities added, less
    those removed; a privileged app keeps the pod's whole set. --insecure-options lifts a part of
    the default profile; an isolator the app asks for holds."""
    if app.privileged:
        return []
    added, removed = app.capabilities_added, app.capabilities_removed
    if "capabilities" in app.relaxed and app.capabilities is None and not removed and not added:
        return []
    kept = app.capabilities if app.capabilities is not None else DEFAULT_CAPABILITIES
    every = dict.fromkeys((*kept, *(ALL_CAPABILITIES if ALL in added else added)))
    gone = set(ALL_CAPABILITIES if ALL in removed else removed)
    return [("CapabilityBoundingSet", " ".join(c for c in every if c not in gone))]


def limits(app: AppSpec) -> list[tuple[str, str]]:
    """The app's confinement and appc isolators, as the app unit's settings."""
    settings = []
    if app.memory_max is not None:
        settings.append(("MemoryMax", str(app.memory_max)))
    if app.cpu_quota is not None:
        settings.append(("CPUQuota", f"{app.cpu_quota}%"))
    if app.cpu_shares is not None:
        settings.append(("CPUShares", str(app.cpu_shares)))  # systemd maps it to CPUWeight= on v2
    if app.oom_score_adj is not None:
        settings.append(("OOMScoreAdjust", str(app.oom_score_adj)))
    filtered = [] if unfiltered(app) else syscall_filter(app)
    settings += narrowed(app, filtered, bounding_set(app))  # its bounding set, then filter
    # unshare and setns are in the filter, but clone and clone3 make namespaces too: a user
    # namespace gives the app every capability over the namespaces it makes with it (nf_tables,
    # mounts), the way in of most kernel exploits since 2022. systemd (seccomp too) denies every
    # kind, by clone, unshare and setns, and clone3 whole with ENOSYS (its flags are out of a
    # filter's reach): libc falls back to clone.
    if "namespaces" not in app.relaxed and not unfiltered(app):
        settings.append(("RestrictNamespaces", "yes"))
    # rkt's rule: no new privileges for an app that is not root once a filter is on (unless the
    # orchestrator allows escalation: the CRI's no_new_privs false)
    if app.no_new_privileges or (filtered and app.user != 0 and "no-new-privileges" not in app.relaxed):
        settings.append(("NoNewPrivileges", "yes"))
    if app.selinux_context:
        settings.append(("SELinuxContext", app.selinux_context))  # systemd skips it without SELinux
    return settings


POD_ETC = "/nspod/etc"  # the pod's own resolv.conf and hosts (--dns, --hosts-entry), for every app


def pod_etc(spec: PodSpec) -> tuple[str, ...]:
    """The files of /etc the pod gives its apps over their images' own (by default stage1 always
    gives a resolv.conf: stage1/cni.py with_dns)."""
    resolv = spec.resolv_conf is not None or spec.resolv_conf_from_host or spec.dns_default
    hosts = spec.hosts is not None or spec.hosts_from_host
    return tuple(name for name, given in (("resolv.conf", resolv), ("hosts", hosts)) if given)


def profile(
    app: AppSpec,
    hidden: tuple[str, ...] = HIDDEN,
    etc: tuple[str, ...] = (),
    *,
    root: str = "",
    etc_dir: str = POD_ETC,
    host_ipc: bool = False,
) -> list[tuple[str, str]]:
    """Where and as whom the app runs, and its confinement, which its unit and every command entered
    into it share. ``hidden``: the kernel paths to hide the host has; ``etc``: the pod's /etc files
    it gets; ``root``, ``etc_dir``: those for the systemd running it (the host's for stage1/fly)."""
    env = dict([("PATH", DEFAULT_PATH), ("AC_APP_NAME", app.name), *app.env])
    return [
        ("MountAPIVFS", "yes"),  # /proc, /sys, /dev in the app's root (appc's OS-SPEC)
        # the standard pseudo-devices alone (the pod's own unit holds the whole pod to nspawn's list)
        ("DevicePolicy", "auto" if app.privileged else "closed"),
        ("RootDirectory", root or APP_ROOT.format(app=app.name)),
        ("WorkingDirectory", path(app.working_directory)),
        ("User", str(app.user)),
        ("Group", str(app.group)),
        *(
            (("SupplementaryGroups", " ".join(map(str, app.supplementary_gids))),)
            if app.supplementary_gids
            else ()
        ),
        *(("Environment", assignment(k, v)) for k, v in env.items()),
        *((("BindReadOnlyPaths", " ".join(f"{etc_dir}/{n}:/etc/{n}" for n in etc)),) if etc else ()),
        *kernel_protection(app, hidden),
        *masks(app, root=root),
        *read_only_root(app, root=root),
        *limits(app),
        *ipc_settings(host_ipc),
    ]


# these load a seccomp filter too (ProtectKernelTunables= one against _sysctl and personality)
SECCOMP_PROTECTION = ("ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs")
# without them: the pod's own /proc/sys and /sys, read-only as nspawn mounts them, bound over the
# app's fresh ones, and what ProtectKernelLogs= hides (/dev/kmsg is out of DevicePolicy=closed's list)
UNFILTERED_BINDS = " ".join(
    ("/proc/sys:/proc/sys", "-/proc/sysrq-trigger:/proc/sysrq-trigger", "/sys:/sys", "/dev/null:/proc/kmsg")
)


def kernel_protection(app: AppSpec, hidden: tuple[str, ...]) -> list[tuple[str, str]]:
    """The kernel's knobs read-only and its secrets hidden, unless lifted (--insecure-options=paths,
    a privileged app), by binds where they can be (kernel_binds.py); no filter: the mount parts alone."""
    if "paths" in app.relaxed or app.privileged:
        return []
    if not unfiltered(app):
        return [*(by_binds(app, bounding_set(app), hidden) or KERNEL_PROTECTION), *hidden_paths(hidden)]
    kept = [s for s in KERNEL_PROTECTION if s[0] not in SECCOMP_PROTECTION]
    return [*kept, ("BindReadOnlyPaths", UNFILTERED_BINDS), *hidden_paths(hidden)]


KERNEL_TREES = ("/proc/", "/sys/")


def _host_kind(path: str) -> bool | None:
    """Whether the host's ``path`` is a directory; None: the host has none (nothing to mask)."""
    return os.path.isdir(path) if os.path.lexists(path) else None


def masks(
    app: AppSpec, is_dir: Callable[[str], bool | None] = _host_kind, *, root: str = ""
) -> list[tuple[str, str]]:
    """The CRI's masked and read-only paths: in the image's tree the app's volumes unit covers a
    masked one (InaccessiblePaths= under /dev), ReadOnlyPaths= makes one read-only (named both
    ways, see read_only_root); under /proc and /sys (MountAPIVFS='s) binds do, as for the hidden
    kernel paths (``is_dir`` asks the host's, the same kernel's: None, it has none)."""
    if app.privileged:
        return []
    # the rest are covered in the pod's tree by the app's volumes unit (stage1/volumes.py), each
    # path itself (systemd would follow /bin/ls -> busybox); a fly app's (root given) systemd hides
    covered = () if root else image_masks(app)
    root = root or APP_ROOT.format(app=app.name)
    masked = [p for p in app.masked_paths if p not in HIDDEN]
    kernel = [p for p in masked if p.startswith(KERNEL_TREES)]
    image = [p for p in masked if not p.startswith(KERNEL_TREES) and p not in covered]
    read_only = [p for p in app.readonly_paths if not p.startswith(KERNEL_TREES)]
    kernel_ro = [p for p in app.readonly_paths if p.startswith(KERNEL_TREES)]

    def both(paths: list[str]) -> str:
        return " ".join(quote(f"-{q}", expand_dollar=False) for p in paths for q in (root + p, p))

    binds = [*(f"-/dev/null:{p}" for p in kernel if is_dir(p) is False), *(f"-{p}:{p}" for p in kernel_ro)]
    dirs = [f"{p}:ro" for p in kernel if is_dir(p)]
    return [
        *((("InaccessiblePaths", both(image)),) if image else ()),
        *((("ReadOnlyPaths", both(read_only)),) if read_only else ()),
        *((("BindReadOnlyPaths", " ".join(binds)),) if binds else ()),
        *((("TemporaryFileSystem", " ".join(dirs)),) if dirs else ()),
    ]


def read_only_root(app: AppSpec, *, root: str = "") -> list[tuple[str, str]]:
    """--readonly-rootfs: the app's root read-only in its own mount namespace (ProtectSystem=strict
    under RootDirectory=; not /proc, /sys, /dev; nspawn's --overlay-ro would need them in every
    image), but for its rw volumes: systemd 252 reads ReadWritePaths= outside the root,
    later ones inside: each path is named both ways ("-": whichever exists)."""
    if not app.read_only_rootfs:
        return []
    root = root or APP_ROOT.format(app=app.name)
    rw = [quote(f"-{p}", expand_dollar=False) for _, t, ro in app.mounts if not ro for p in (root + t, t)]
    return [("ProtectSystem", "strict"), *((("ReadWritePaths", " ".join(rw)),) if rw else ())]


def described(app: AppSpec, hidden: tuple[str, ...] = HIDDEN) -> dict[str, object]:
    """The app's effective profile as ``nspod status --format json`` shows it, read off the very
    settings its unit gets (so the two cannot disagree)."""
    settings = profile(app, hidden)
    values = dict(settings)  # the single-valued ones
    filters = [v for k, v in settings if k == "SystemCallFilter" and v != KERNEL_CALLS]  # (the settings')
    return {
        "user": app.user,
        "group": app.group,
        "supplementary_gids": list(app.supplementary_gids),
        # None: not narrowed by nspod (--insecure-options=capabilities): the pod's own set
        "capabilities": values["CapabilityBoundingSet"].split()
        if "CapabilityBoundingSet" in values
        else None,
        "seccomp": {
            "mode": app.seccomp_mode or ("default" if filters else "none"),
            "filter": filters,
            "errno": values.get("SystemCallErrorNumber"),
        },
        "no_new_privileges": values.get("NoNewPrivileges") == "yes",
        "namespaces": "restricted" if values.get("RestrictNamespaces") == "yes" else "allowed",
        "kernel_paths": "protected" if "ProtectKernelTunables" in values or bound(settings) else "relaxed",
        "hidden_paths": [p for p in hidden if "paths" not in app.relaxed],
        "device_policy": values["DevicePolicy"],
        "memory_max": app.memory_max,
        "cpu_quota_percent": app.cpu_quota,
        "cpu_shares": app.cpu_shares,
        "oom_score_adj": app.oom_score_adj,
        "selinux_context": app.selinux_context or None,
        "sysctl": dict(app.sysctl),
        "relaxed": list(app.relaxed),
    }


def app_unit(
    app: AppSpec,
    sockets: tuple[str, ...] = (),
    stdio: Stdio = Stdio.JOURNAL,
    index: int = 0,
    hidden: tuple[str, ...] = HIDDEN,
    etc: tuple[str, ...] = (),
    *,
    host_ipc: bool = False,
) -> list[Entry]:
    """``<app>.service``; ``sockets``: its socket units; ``index``: its place in the pod; the rest
    as for profile."""
    root = APP_ROOT.format(app=app.name)
    settings = profile(app, hidden, etc, host_ipc=host_ipc)

    def run(argv: tuple[str, ...]) -> str:  # through nspod-pidns for an app with its own PID namespace
        return command(wrapped(app, settings, argv))

    unit = section(
        "Unit",
        ("Description", f"Application {app.name}"),
        ("DefaultDependencies", "no"),
        # a CRI container's readiness is its probes' (kubelet's): no report, whose Python would
        # run beside the app's start
        ("Wants", f"reaper-{app.name}.service" + ("" if has_writer(app) else f" ready-{app.name}.service")),
        ("Requires", " ".join(sockets)) if sockets else None,
        ("After", " ".join(sockets)) if sockets else None,
        *((("Requires", "sysctl.service"), ("After", "sysctl.service")) if app.sysctl else ()),
        # journald must have the app's output stream before the app ends (the reaper); relayed, it has none
        ("After", "systemd-journald.service") if has_writer(app) or not stdio.relayed else None,
        # stop (and run post-stop handlers) before systemd unmounts the app's root at shutdown
        ("RequiresMountsFor", root),
        # its volumes, bound inside its root before it starts (stage1/volumes.py)
        *(
            (("Requires", volumes_unit_name(app.name)), ("After", volumes_unit_name(app.name)))
            if has_volumes_unit(app)
            else ()
        ),
        ("Conflicts", "shutdown.target"),  # what DefaultDependencies would add: the pod's end stops the app
        ("Before", "shutdown.target"),
        *(app_log_dependencies(app) if has_writer(app) else ()),
    )
    service = section(
        "Service",
        ("Type", "notify" if app.notify else "exec"),
        # the app's READY=1 goes to the pod's systemd through its socket, bound into the app's root
        ("NotifyAccess", "main") if app.notify else None,
        ("BindPaths", "/run/systemd/notify") if app.notify else None,
        *widened(app, settings),
        *(("ExecStartPre", run(c)) for c in app.pre_start),
        ("ExecStart", run(app.exec)),
        *(("ExecStopPost", run(c)) for c in app.post_stop),
        *(app_log_stdio(app) if has_writer(app) else app_stdio(stdio, index)),
        ("SyslogIdentifier", app.name),
        ("Sockets", " ".join(sockets)) if sockets else None,
        ("Restart", "no"),
        ("TimeoutStartSec", "0"),
        ("TimeoutStopSec", f"{app.stop_timeout:g}s"),  # then SIGKILL
        *((("KillSignal", app.stop_signal),) if app.stop_signal else ()),  # an OCI image's StopSignal
    )
    return unit + service


def reaper_unit(app: AppSpec, *, sandbox: bool = False, relayed: bool = False) -> list[Entry]:
    """Records the app's exit status when it ends; in a pod started by ``run`` the first app to
    fail ends the pod, and the last one to end does (shutdown.service). An app sandbox outlives
    its apps until stopped (``nspod app``). ``relayed``: its output goes to the host, not journald."""
    unit = section(
        "Unit",
        ("Description", f"Exit status of {app.name}"),
        ("DefaultDependencies", "no"),
        ("StopWhenUnneeded", "yes"),
        *(() if sandbox else (("Wants", "shutdown.service"), ("After", "shutdown.service"))),
        ("Before", f"{app.name}.service"),  # so it stops after the app: the status is final then
        ("Conflicts", "shutdown.target"),
        ("Before", "shutdown.target"),
        ("RequiresMountsFor", STATUS_DIR),  # record the status before the status dir goes away
    )
    service = section(
        "Service",
        ("Type", "oneshot"),
        ("RemainAfterExit", "yes"),  # active without a process: nothing spawned before the app's start
        ("ExecStop", f"/nspod/bin/reaper {'--keep-pod ' * sandbox}{'--relayed ' * relayed}{app.name}"),
    )
    return unit + service


def ready_unit(app: AppSpec, count: int) -> list[Entry]:
    unit = section(
        "Unit",
        ("Description", f"Report {app.name} ready"),
        ("DefaultDependencies", "no"),
        ("After", f"{app.name}.service"),
        ("Requisite", f"{app.name}.service"),
    )
    return unit + section(
        "Service", ("Type", "oneshot"), ("ExecStart", f"/nspod/bin/report {app.name} {count}")
    )
