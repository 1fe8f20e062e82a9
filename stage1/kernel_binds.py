"""An app's kernel protections as a few binds of the pod's own trees (issue #26, item 2).

systemd's ``ProtectKernelTunables=``, ``ProtectKernelModules=``, ``ProtectKernelLogs=`` and
``ProtectControlGroups=`` cost an app's start ~25 ms here: each protected path is a mount entry of
its own (a bind onto itself, then a read-only remount that re-reads the namespace's mount table),
~20 of them. The same confinement, with fewer mounts, for an app of the pod's own systemd:

* mounts: the pod's /proc/sys and /sys bound read-only over the fresh ones (a bind on /sys
  replaces MountAPIVFS='s own bind of it, so it is no extra mount); /proc/sysrq-trigger and the
  other /proc paths ProtectKernelTunables= makes read-only bound read-only from the pod's /proc
  (the same kernel's: none is per PID namespace), /proc/kmsg under /dev/null (/dev/kmsg is out of
  ``DevicePolicy=closed``'s list). The kernel paths nspod hides stay hidden (app_unit.hidden_paths).
* calls: what the three settings' own filters deny (``@module``, ``syslog``, ``_sysctl``) on a
  line of the app's filter, with its errno (EPERM, theirs);
* capabilities: the settings take CAP_SYS_MODULE and CAP_SYSLOG out of the bounding set: only an
  app whose own set has neither is bound in.

Only where all three can be said so: an app with a filter of EPERM and a bounding set of its own
without those two. Anywhere else the settings stay. The same for a fly app (the host's systemd,
whose MountAPIVFS= binds the host's /sys as well). The confinement suite (tests/integration/
test_confinement*.py, tests/attacks/) holds both ways unchanged.
"""

from __future__ import annotations

from stage1.abi import AppSpec
from stage1.seccomp import syscall_filter

Settings = list[tuple[str, str]]

# what ProtectKernelTunables= makes read-only under /proc (systemd 252's table), less /proc/sys
TUNABLE_PROC = (
    "/proc/acpi", "/proc/apm", "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq",
    "/proc/latency_stats", "/proc/mtrr", "/proc/scsi", "/proc/sysrq-trigger", "/proc/timer_stats",
)  # fmt: skip
# the pod's trees, bound read-only: /proc/sys alone, as a fresh procfs has it (not what is mounted
# below it in the pod: /proc/sys/net left writable by nspawn, the pod's boot_id, a binfmt_misc
# automount of a systemd that has a writable /proc/sys); /sys with its mounts (the pod's cgroup
# tree, read-only too), as MountAPIVFS= binds it
POD_TREES = ("/proc/sys:/proc/sys:norbind", "/sys:/sys", "/dev/null:/proc/kmsg")
# the calls the three settings' own filters deny
KERNEL_CALLS = "~@module syslog _sysctl"
KERNEL_CAPABILITIES = ("CAP_SYS_MODULE", "CAP_SYSLOG")


def bound_in(app: AppSpec, filtered: Settings, bounding: Settings) -> bool:
    """Whether the app's kernel protections can be binds (``filtered``: its filter settings,
    ``bounding``: its bounding set's)."""
    if "paths" in app.relaxed or app.privileged:
        return False  # (relaxed or privileged: no protection at all, app_unit.kernel_protection)
    has_filter = any(key == "SystemCallFilter" for key, _ in filtered)
    capabilities = {c for _, v in bounding for c in v.split()}
    narrow = bool(bounding) and not capabilities & set(KERNEL_CAPABILITIES)  # (ALL added: the settings)
    return has_filter and ("SystemCallErrorNumber", "EPERM") in filtered and narrow


def by_binds(app: AppSpec, bounding: Settings, hidden: tuple[str, ...]) -> Settings:
    """The mounts, beside the hidden paths (app_unit.hidden_paths: those of TUNABLE_PROC the host
    has are hidden instead; a missing one is skipped, "-"); none: the settings stay."""
    if not bound_in(app, syscall_filter(app), bounding):
        return []
    proc = [f"-{p}:{p}" for p in TUNABLE_PROC if p not in hidden]
    return [("BindReadOnlyPaths", " ".join((*POD_TREES, *proc)))]


def bound(settings: Settings) -> bool:
    """Whether ``settings`` protect the kernel by binds (what ``nspod status`` calls protected)."""
    first = " ".join(POD_TREES)
    return any(key == "BindReadOnlyPaths" and value.startswith(first) for key, value in settings)


def narrowed(app: AppSpec, filtered: Settings, bounding: Settings) -> Settings:
    """The app's bounding set and filter settings; bound in: the filter denying the kernel's calls
    too (what the settings' own filters would)."""
    if not bound_in(app, filtered, bounding):
        return [*bounding, *filtered]
    return [*bounding, *filtered, ("SystemCallFilter", KERNEL_CALLS)]
