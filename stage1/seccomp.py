"""An app's system call filter, as ``SystemCallFilter=`` settings of its unit: nspod's default, or
an appc seccomp isolator (a retain set: the calls allowed; a remove set: the calls denied) with
its wildcards (``abi.SECCOMP_WILDCARDS``) expanded to systemd's groups and Docker's list.

systemd merges the lines: the first decides allow- or deny-list, and a later ``~`` line takes
calls out of an allow-list. A filtered call fails with the isolator's errno, EPERM by default (as
it would for want of a capability), so an app sees an error, not a SIGSYS.
"""

from __future__ import annotations

from stage1.abi import SECCOMP_ALL, SECCOMP_EMPTY, AppSpec, Error

DEFAULT_ERRNO = "EPERM"
# What Docker's default profile denies (docs.docker.com, "Significant syscalls blocked"), by name:
# clone and personality, which Docker filters by argument, stay allowed (clone's namespace flags
# need CAP_SYS_ADMIN, which no app has by default).
DOCKER_DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot",
    "request_key", "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs",
    "_sysctl", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)  # fmt: skip
# io_uring reaches much of the kernel by a path of its own, and has been a steady source of local
# root exploits: Docker (since 25.0) and podman deny it, ChromeOS and Android turned it off
IO_URING = ("io_uring_enter", "io_uring_register", "io_uring_setup")
# nspod's default deny-list: systemd's groups for what no service needs (clock, modules, mounts,
# reboot, swap, raw I/O, keyrings, tracing, obsolete calls), Docker's list and io_uring on top of them
DEFAULT_DENIED = (
    "@clock", "@cpu-emulation", "@debug", "@keyring", "@module", "@mount", "@obsolete", "@raw-io",
    "@reboot", "@swap", *DOCKER_DENIED, *IO_URING,
)  # fmt: skip
# rkt's own default lists were Docker's under another name
ALLOW_LISTS = {"@docker/default-whitelist", "@rkt/default-whitelist"}
DENY_LISTS = {"@docker/default-blacklist", "@rkt/default-blacklist"}


def _names(item: str) -> tuple[str, ...]:
    """A set's item as systemd names: a call, a systemd group (``@systemd/mount`` → ``@mount``) or
    Docker's deny-list."""
    if item in DENY_LISTS:
        return DOCKER_DENIED
    if item.startswith("@systemd/"):
        group = item.removeprefix("@systemd/")
        return ("@default",) if group == "default-whitelist" else (f"@{group}",)
    return (item,)


def _filter(mode: str, items: tuple[str, ...]) -> tuple[str, ...] | None:
    """The filter's lines (allow-list first, then ``~`` lines), or None: no filter at all."""
    if mode == "retain":
        if SECCOMP_ALL in items:
            return None  # every call allowed
        allowed = [n for i in items if i not in ALLOW_LISTS and i != SECCOMP_EMPTY for n in _names(i)]
        if not any(i in ALLOW_LISTS for i in items):
            # nothing allowed (@appc.io/empty) is every known call denied: an empty
            # "SystemCallFilter=" would reset the filter instead
            return (" ".join(allowed),) if allowed else ("~@known",)
        # Docker's allow-list is every call but its deny-list; calls named beside it stay allowed
        denied = [n for n in DOCKER_DENIED if n not in allowed]
        return (" ".join(["@known", *allowed]), "~" + " ".join(denied))
    if mode == "remove":
        if any(i in ALLOW_LISTS or i == SECCOMP_ALL for i in items):
            raise Error("a seccomp remove set cannot remove an allow-list", hint="use mode=retain for it")
        denied = [n for i in items if i != SECCOMP_EMPTY for n in _names(i)]
        return ("~" + " ".join(denied),) if denied else None
    return ("~" + " ".join(DEFAULT_DENIED),)


def syscall_filter(app: AppSpec) -> list[tuple[str, str]]:
    """The app's filter settings; ``--insecure-options=seccomp`` lifts the default filter, not an
    isolator the app asks for."""
    if not app.seccomp_mode and "seccomp" in app.relaxed:
        return []
    lines = _filter(app.seccomp_mode, app.seccomp_set)
    if lines is None:
        return []
    return [
        *(("SystemCallFilter", line) for line in lines),
        ("SystemCallErrorNumber", app.seccomp_errno or DEFAULT_ERRNO),
    ]
