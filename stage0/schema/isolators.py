"""Isolators (``spec/ace.md`` "Isolators"): per-name validation of the ``value`` object.

An app may carry only isolators this module knows (the spec authors' code refuses others with
"invalid isolator"); a pod may carry unknown ones, which an executor may ignore.
"""

from __future__ import annotations

import errno as errnolib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stage0.errors import SchemaError
from stage0.schema.fields import JSON, Obj, field, ptr, value
from stage0.schema.quantity import Quantity
from stage0.schema.types import ACIdentifier
from stage1.abi import SECCOMP_ALL, SECCOMP_WILDCARDS

# Every capability Linux 6.x defines (capability.h); anything else in a capability set is a typo.
LINUX_CAPABILITIES = frozenset(
    {
        "CAP_CAP_",
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    }
)
_SYSCALL = re.compile(r"_?[a-z][a-z0-9_]*")
ERRNO_NAMES = frozenset(n for n in dir(errnolib) if n.startswith("E"))  # ENOTSUP as well as EOPNOTSUPP


def _object(raw: JSON, pointer: str) -> Obj:
    if not isinstance(raw, dict):
        raise SchemaError(pointer, "must be an object")
    return raw


def _resource(default: bool) -> Callable[[JSON, str], None]:
    """resource/cpu and memory take request/limit; the bandwidth kinds need default=true, no request."""

    def check(raw: JSON, pointer: str) -> None:
        obj = _object(raw, pointer)
        if obj.get("default", False) is not default:
            raise SchemaError(ptr(pointer, "default"), f"must be {str(default).lower()}")
        if default and "request" in obj:
            raise SchemaError(ptr(pointer, "request"), "must not be set for this isolator")
        for key in ("request", "limit"):
            if obj.get(key) is not None:
                value(ptr(pointer, key), Quantity, obj[key])

    return check


def _string_set(what: str, valid: Callable[[str], bool]) -> Callable[[JSON, str], None]:
    def check(raw: JSON, pointer: str) -> None:
        names = field(_object(raw, pointer), pointer, "set", lambda v: v)
        if not isinstance(names, list) or not names:
            raise SchemaError(ptr(pointer, "set"), "must be a non-empty list")
        for i, name in enumerate(names):
            if not isinstance(name, str) or not valid(name):
                raise SchemaError(ptr(ptr(pointer, "set"), i), f"{name!r} is not a {what}")

    return check


def _capabilities(raw: JSON, pointer: str) -> None:
    _string_set("Linux capability (e.g. CAP_NET_ADMIN)", LINUX_CAPABILITIES.__contains__)(raw, pointer)


def _syscall(name: str) -> bool:
    return name in SECCOMP_WILDCARDS if name.startswith("@") else bool(_SYSCALL.fullmatch(name))


def _seccomp(raw: JSON, pointer: str, *, remove: bool = False) -> None:
    _string_set(
        "system call name or wildcard (@appc.io/all, @docker/default-blacklist, @systemd/mount, …)", _syscall
    )(raw, pointer)
    allow_lists = [n for n in _object(raw, pointer)["set"] if n == SECCOMP_ALL or n.endswith("-whitelist")]
    if remove and allow_lists:
        raise SchemaError(ptr(pointer, "set"), f"a remove set cannot hold the allow-list {allow_lists[0]}")
    errno = _object(raw, pointer).get("errno", "")
    if not isinstance(errno, str) or (errno and errno not in ERRNO_NAMES):
        raise SchemaError(ptr(pointer, "errno"), f"{errno!r} is not an errno name such as EPERM or ENOSYS")


def _int_range(low: int, high: int) -> Callable[[JSON, str], None]:
    def check(raw: JSON, pointer: str) -> None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            raise SchemaError(pointer, f"must be an integer between {low} and {high}")

    return check


def _boolean(raw: JSON, pointer: str) -> None:
    if not isinstance(raw, bool):
        raise SchemaError(pointer, "must be true or false")


def _selinux(raw: JSON, pointer: str) -> None:
    obj = _object(raw, pointer)
    for key in ("user", "role", "type", "level"):
        part = field(obj, pointer, key, lambda v: v)
        if not isinstance(part, str) or not part or (key != "level" and ":" in part):
            raise SchemaError(
                ptr(pointer, key), "must be a non-empty string" + ("" if key == "level" else " without ':'")
            )


def _sysctl(raw: JSON, pointer: str) -> None:
    for key, setting in _object(raw, pointer).items():
        if not isinstance(setting, str):
            raise SchemaError(ptr(pointer, key), "must be a string")


@dataclass(frozen=True, slots=True)
class Kind:
    check: Callable[[JSON, str], None]
    multiple: bool = True
    conflicts: tuple[str, ...] = ()


SECCOMP_REMOVE, SECCOMP_RETAIN = "os/linux/seccomp-remove-set", "os/linux/seccomp-retain-set"
KINDS: dict[str, Kind] = {
    "resource/cpu": Kind(_resource(default=False)),
    "resource/memory": Kind(_resource(default=False)),
    "resource/block-bandwidth": Kind(_resource(default=True)),
    "resource/block-iops": Kind(_resource(default=True)),
    "resource/network-bandwidth": Kind(_resource(default=True)),
    "os/linux/capabilities-retain-set": Kind(
        _capabilities, multiple=False, conflicts=("os/linux/capabilities-remove-set",)
    ),
    "os/linux/capabilities-remove-set": Kind(
        _capabilities, multiple=False, conflicts=("os/linux/capabilities-retain-set",)
    ),
    "os/linux/no-new-privileges": Kind(_boolean, multiple=False),
    SECCOMP_REMOVE: Kind(
        lambda raw, pointer: _seccomp(raw, pointer, remove=True), multiple=False, conflicts=(SECCOMP_RETAIN,)
    ),
    SECCOMP_RETAIN: Kind(_seccomp, multiple=False, conflicts=(SECCOMP_REMOVE,)),
    "os/linux/oom-score-adj": Kind(_int_range(-1000, 1000), multiple=False),
    "os/linux/cpu-shares": Kind(_int_range(2, 262144), multiple=False),
    "os/linux/selinux-context": Kind(_selinux, multiple=False),
    "os/unix/sysctl": Kind(_sysctl, multiple=False),
}


@dataclass(frozen=True, slots=True)
class Isolator:
    name: ACIdentifier
    value: Any  # the JSON value, validated for known names and kept as written

    @classmethod
    def from_json(cls, obj: Obj, pointer: str, *, allow_unknown: bool) -> Isolator:
        name = field(obj, pointer, "name", ACIdentifier)
        if "value" not in obj:
            raise SchemaError(ptr(pointer, "value"), "is required")
        kind = KINDS.get(name)
        if kind is not None:
            kind.check(obj["value"], ptr(pointer, "value"))
        elif not allow_unknown:
            raise SchemaError(
                ptr(pointer, "name"),
                f"unknown isolator {name!r} (appc 0.8.11 knows: {', '.join(sorted(KINDS))})",
            )
        return cls(name=name, value=obj["value"])

    def to_json(self) -> dict[str, JSON]:
        return {"name": str(self.name), "value": self.value}


def check_set(isolators: tuple[Isolator, ...], pointer: str) -> None:
    """Across one list: no repeats of single-instance kinds, no conflicting pairs."""
    seen: list[str] = []
    for i, isolator in enumerate(isolators):
        kind = KINDS.get(isolator.name)
        if kind is not None:
            if not kind.multiple and isolator.name in seen:
                raise SchemaError(
                    ptr(ptr(pointer, i), "name"), f"only one {isolator.name!r} isolator allowed"
                )
            clash = next((c for c in kind.conflicts if c in seen), None)
            if clash:
                raise SchemaError(
                    ptr(ptr(pointer, i), "name"), f"{isolator.name!r} conflicts with {clash!r}"
                )
        seen.append(isolator.name)


def parse_isolators(obj: Obj, pointer: str, *, allow_unknown: bool) -> tuple[Isolator, ...]:
    raw = obj.get("isolators")
    if raw is None:
        return ()
    here = ptr(pointer, "isolators")
    if not isinstance(raw, list):
        raise SchemaError(here, "must be a list")
    result = tuple(
        Isolator.from_json(_object(item, ptr(here, i)), ptr(here, i), allow_unknown=allow_unknown)
        for i, item in enumerate(raw)
    )
    check_set(result, here)
    return result


__all__ = ["KINDS", "LINUX_CAPABILITIES", "Isolator", "parse_isolators"]
