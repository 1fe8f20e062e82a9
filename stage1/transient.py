"""What a transient service looks like, as data: the pure half of StartTransientUnit.

:class:`TransientService` holds the settings nspod uses; :meth:`TransientService.properties`
turns them into the (name, D-Bus signature, value) triples systemd's ``StartTransientUnit`` takes.
No I/O here; ``stage1/systemd.py`` sends the result.
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass
from typing import Any, NamedTuple

from stage1.abi import Error


class ServiceType(enum.StrEnum):
    SIMPLE = "simple"
    EXEC = "exec"
    ONESHOT = "oneshot"
    NOTIFY = "notify"


class KillMode(enum.StrEnum):
    CONTROL_GROUP = "control-group"
    MIXED = "mixed"
    PROCESS = "process"


class CollectMode(enum.StrEnum):
    INACTIVE = "inactive"
    INACTIVE_OR_FAILED = "inactive-or-failed"


class Property(NamedTuple):
    name: str
    signature: str
    value: Any


@dataclass(frozen=True, slots=True)
class ExecCommand:
    """One ``ExecStart=`` entry: the binary, its full argv (argv[0] included), and whether a
    non-zero exit is ignored (systemd's ``-`` prefix)."""

    path: str
    argv: tuple[str, ...]
    ignore_failure: bool = False

    @classmethod
    def of(cls, *argv: str) -> ExecCommand:
        return cls(argv[0], tuple(argv))


_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\-]+\.service")
_FIELD_NAME = re.compile(r"[A-Z0-9_]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransientService:
    name: str
    exec_start: tuple[ExecCommand, ...]
    description: str = ""
    type: ServiceType = ServiceType.SIMPLE
    notify_access: str | None = None  # main, exec, all
    slice: str | None = None
    delegate: bool = False
    kill_mode: KillMode | None = None
    collect_mode: CollectMode = CollectMode.INACTIVE_OR_FAILED
    # Keep the unit loaded after it ends, until we Unref() or disconnect, so its exit status can be
    # read; together with CollectMode=inactive-or-failed no failed unit is left behind.
    add_ref: bool = True
    log_extra_fields: tuple[tuple[str, str], ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    # the caller's stdin, stdout and stderr as the unit's (sent along with the D-Bus call)
    stdio_fds: tuple[int, int, int] | None = None
    # DevicePolicy=closed with these (device, access) pairs allowed; None: systemd's default (all)
    device_allow: tuple[tuple[str, str], ...] | None = None
    limits: tuple[Property, ...] = ()  # resource limits (stage1/nspawn.py pod_limits)
    exec_stop_post: tuple[ExecCommand, ...] = ()  # run however the service ends
    exec_stop: tuple[ExecCommand, ...] = ()  # a stop's first step, before systemd's signal
    binds_to: tuple[str, ...] = ()  # units whose stop stops this one (BindsTo=)

    def __post_init__(self) -> None:
        if not _UNIT_NAME.fullmatch(self.name) or len(self.name) > 255:
            raise Error(
                f"invalid service name {self.name!r}",
                hint="use letters, digits and :_.\\- ending in .service",
            )
        if not self.exec_start:
            raise Error(f"{self.name}: no command to run", hint="give ExecStart at least one command")
        for key, _ in self.log_extra_fields:
            if not _FIELD_NAME.fullmatch(key) or key[0] == "_":
                raise Error(
                    f"invalid journal field name {key!r}", hint="use A-Z, 0-9 and _, not starting with _"
                )

    def properties(self) -> tuple[Property, ...]:
        """The unit's properties for StartTransientUnit, in a stable order."""
        props = [
            Property("Description", "s", self.description or self.name),
            Property("Type", "s", str(self.type)),
            Property("ExecStart", "a(sasb)", _commands(self.exec_start)),
            *((Property("ExecStop", "a(sasb)", _commands(self.exec_stop)),) if self.exec_stop else ()),
            *(
                (Property("ExecStopPost", "a(sasb)", _commands(stops)),)
                if (stops := self.exec_stop_post)
                else ()
            ),
            Property("CollectMode", "s", str(self.collect_mode)),
            Property("AddRef", "b", self.add_ref),
        ]
        if self.binds_to:
            props.append(Property("BindsTo", "as", list(self.binds_to)))
        if self.notify_access:
            props.append(Property("NotifyAccess", "s", self.notify_access))
        if self.slice:
            props.append(Property("Slice", "s", self.slice))
        if self.delegate:
            props.append(Property("Delegate", "b", True))
        if self.kill_mode:
            props.append(Property("KillMode", "s", str(self.kill_mode)))
        if self.device_allow is not None:
            props.append(Property("DevicePolicy", "s", "closed"))
            props.append(Property("DeviceAllow", "a(ss)", [list(d) for d in self.device_allow]))
        if self.environment:
            props.append(Property("Environment", "as", [f"{k}={v}" for k, v in self.environment]))
        if self.log_extra_fields:
            props.append(
                Property("LogExtraFields", "aay", [f"{k}={v}".encode() for k, v in self.log_extra_fields])
            )
        props += self.limits
        if self.stdio_fds is not None:
            for stream, fd in zip(("Input", "Output", "Error"), self.stdio_fds, strict=True):
                props.append(Property(f"Standard{stream}FileDescriptor", "h", fd))
        return tuple(props)


def _commands(commands: tuple[ExecCommand, ...]) -> list[tuple[str, list[str], bool]]:
    return [(c.path, list(c.argv), c.ignore_failure) for c in commands]


def _exec_line(path: str, argv: list[str], ignore: bool) -> str:
    """systemd's own ExecStart= syntax: ``-`` ignores failure, ``@`` when argv[0] is not the path."""
    prefix = "-" if ignore else ""
    if argv and argv[0] == path:
        return prefix + shlex.join(argv)
    return f"{prefix}@{path} {shlex.join(argv)}"


def render_properties(props: tuple[Property, ...]) -> str:
    """A readable, stable text form of the properties (golden files, ``--debug`` logs)."""
    lines = []
    for prop in props:
        value = prop.value
        if prop.signature == "a(sasb)":  # ExecStart=, ExecStopPost=
            value = " ; ".join(_exec_line(path, argv, ignore) for path, argv, ignore in value)
        elif prop.signature == "aay":
            value = " ".join(v.decode() for v in value)
        elif prop.signature == "as":
            value = " ".join(value)
        elif prop.signature == "b":
            value = "yes" if value else "no"
        elif prop.signature == "a(ss)":
            value = " ".join(f"{device}:{access}" for device, access in value)
        elif prop.signature == "h":
            value = f"fd {value}"
        lines.append(f"{prop.name}={value}")
    return "\n".join(lines) + "\n"
