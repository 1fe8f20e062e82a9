"""A Docker/OCI seccomp profile (JSON, what Kubernetes' Localhost profiles are) as nspod's filter:
a deny-list ("remove") under a default that allows, an allow-list ("retain") under one that
denies, with the errno a denied call returns (pure).

What systemd's SystemCallFilter= cannot say is decided so that nspod never allows less than it
can check, and refuses what it cannot honour:
* a rule allowing a call for some arguments only allows the call (Docker's own profile guards
  clone's and unshare's namespace flags this way: nspod's RestrictNamespaces= holds them);
* a rule denying a call for some arguments only is refused: denying the call whole would break
  the app, allowing it would drop the profile's word;
* SCMP_ACT_KILL*, TRAP and the rest deny with the errno too (systemd's filter has one action);
* ``includes``/``excludes`` by capability are read against the container's capabilities, by
  architecture against this host's.
"""

from __future__ import annotations

import errno as errnos
import json
import platform
import re
from typing import Any

from stage0.cri.status import invalid

ALLOW = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG")
DENY = (
    "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY",
)  # fmt: skip
SYSCALL = re.compile(r"[a-z_][a-z0-9_]*")
# the host's architecture as libseccomp and Docker name it
ARCHES = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64")}


def profile_filter(
    text: str, where: str, capabilities: frozenset[str] | None
) -> tuple[str, tuple[str, ...], str]:
    """(mode, calls, errno) for the profile ``text`` read from ``where``; ``capabilities``: the
    container's (None: every one), for rules that hold only with or without some."""
    try:
        profile = json.loads(text)
    except ValueError as error:
        raise invalid(f"seccomp profile {where} is not JSON: {error}") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise invalid(f"seccomp profile {where} has no defaultAction")
    default = profile["defaultAction"]
    if default not in ALLOW + DENY:
        raise invalid(f"seccomp profile {where}: unknown defaultAction {default!r}")
    allowing = default in ALLOW
    calls: list[str] = []
    errno = _errno(profile.get("defaultErrnoRet"), where) if not allowing else ""
    for rule in profile.get("syscalls") or ():
        if not isinstance(rule, dict) or not _applies(rule, capabilities):
            continue
        action = rule.get("action")
        if action not in ALLOW + DENY:
            raise invalid(f"seccomp profile {where}: unknown action {action!r}")
        names = _names(rule, where)
        if allowing and action in DENY:
            if rule.get("args"):
                raise invalid(
                    f"seccomp profile {where}: denying {', '.join(names)} for some arguments only "
                    "is beyond systemd's filter"
                )
            calls += names
            errno = errno or _errno(rule.get("errnoRet"), where)
        elif not allowing and action in ALLOW:
            calls += names
    return ("remove" if allowing else "retain"), tuple(dict.fromkeys(calls)), errno or "EPERM"


def _names(rule: dict[str, Any], where: str) -> list[str]:
    names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
    for name in names:
        if not isinstance(name, str) or not SYSCALL.fullmatch(name):
            raise invalid(f"seccomp profile {where}: {name!r} is not a system call")
    return list(names)


def _errno(value: Any, where: str) -> str:
    """A rule's errnoRet (a number) as its name, which systemd takes; "" for none."""
    if value is None:
        return ""
    if not isinstance(value, int) or value not in errnos.errorcode:
        raise invalid(f"seccomp profile {where}: errnoRet {value!r} is not an errno")
    return errnos.errorcode[value]


def _applies(rule: dict[str, Any], capabilities: frozenset[str] | None) -> bool:
    """Whether the rule's ``includes`` hold and its ``excludes`` do not, for this container."""
    includes, excludes = rule.get("includes") or {}, rule.get("excludes") or {}
    arch = set(ARCHES.get(platform.machine(), ()))

    def have(name: str) -> bool:
        return capabilities is None or _cap(name) in capabilities

    if not all(have(c) for c in includes.get("caps") or ()):
        return False
    if includes.get("arches") and not set(includes["arches"]) & arch:
        return False
    if any(have(c) for c in excludes.get("caps") or ()):
        return False
    return not (excludes.get("arches") and set(excludes["arches"]) & arch)


def _cap(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper
