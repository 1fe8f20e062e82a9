"""The ``app`` object of an image manifest (also a pod app's override), and the name/value lists
(labels, annotations) both manifests use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from stage0.errors import SchemaError
from stage0.schema.fields import (
    JSON,
    Obj,
    boolean,
    field,
    items,
    optional,
    ptr,
    string_map,
    strings,
    text,
    uint,
    unique,
    value,
)
from stage0.schema.isolators import Isolator, parse_isolators
from stage0.schema.types import (
    HTTPURL,
    VALID_OS_ARCH,
    AbsolutePath,
    ACIdentifier,
    ACName,
    EnvName,
    Invalid,
    Timestamp,
)

EVENT_NAMES = ("pre-start", "post-stop")
NOTIFY_ANNOTATION = "appc.io/executor/supports-systemd-notify"


def _drop_empty(obj: dict[str, JSON]) -> dict[str, JSON]:
    """Canonical dumps leave out absent fields and empty lists, so parse∘dump is the identity."""
    return {k: v for k, v in obj.items() if v is not None and v != [] and v != {}}


@dataclass(frozen=True, slots=True)
class NameValue:
    """One label or annotation."""

    name: ACIdentifier
    value: str

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        return cls(field(obj, pointer, "name", ACIdentifier), field(obj, pointer, "value", text))

    def to_json(self) -> dict[str, JSON]:
        return {"name": str(self.name), "value": self.value}


def parse_labels(obj: Obj, pointer: str) -> tuple[NameValue, ...]:
    labels = items(obj, pointer, "labels", NameValue.from_json)
    here = ptr(pointer, "labels")
    unique(here, (label.name for label in labels), "label")
    by_name: dict[str, tuple[int, str]] = {label.name: (i, label.value) for i, label in enumerate(labels)}
    if "name" in by_name:
        raise SchemaError(
            ptr(ptr(here, by_name["name"][0]), "name"), "'name' is not allowed as a label name"
        )
    if "os" in by_name:
        i, os_name = by_name["os"]
        if os_name not in VALID_OS_ARCH:
            raise SchemaError(
                ptr(ptr(here, i), "value"), f"unknown os {os_name!r} (known: {', '.join(VALID_OS_ARCH)})"
            )
        if "arch" in by_name and by_name["arch"][1] not in VALID_OS_ARCH[os_name]:
            i, arch = by_name["arch"]
            raise SchemaError(
                ptr(ptr(here, i), "value"),
                f"arch {arch!r} is not valid for os {os_name!r} "
                f"(valid: {', '.join(sorted(VALID_OS_ARCH[os_name]))})",
            )
    return labels


def parse_annotations(obj: Obj, pointer: str) -> tuple[NameValue, ...]:
    annotations = items(obj, pointer, "annotations", NameValue.from_json)
    here = ptr(pointer, "annotations")
    unique(here, (a.name for a in annotations), "annotation")
    checks = {"created": Timestamp, "homepage": HTTPURL, "documentation": HTTPURL}
    for i, annotation in enumerate(annotations):
        if annotation.name in checks:
            value(ptr(ptr(here, i), "value"), checks[annotation.name], annotation.value)
        elif annotation.name == NOTIFY_ANNOTATION and annotation.value not in ("true", "false"):
            raise SchemaError(ptr(ptr(here, i), "value"), "must be 'true' or 'false'")
    return annotations


@dataclass(frozen=True, slots=True)
class EventHandler:
    name: str
    exec: tuple[str, ...]

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        name = field(obj, pointer, "name", text)
        if name not in EVENT_NAMES:
            raise SchemaError(
                ptr(pointer, "name"), f"unknown event handler {name!r} (known: pre-start, post-stop)"
            )
        command = field(obj, pointer, "exec", strings)
        if not command:
            raise SchemaError(ptr(pointer, "exec"), "must not be empty")
        return cls(name, command)

    def to_json(self) -> dict[str, JSON]:
        return {"name": self.name, "exec": list(self.exec)}


@dataclass(frozen=True, slots=True)
class MountPoint:
    name: ACName
    path: AbsolutePath
    read_only: bool = False

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        return cls(
            field(obj, pointer, "name", ACName),
            field(obj, pointer, "path", AbsolutePath),
            optional(obj, pointer, "readOnly", boolean, False),
        )

    def to_json(self) -> dict[str, JSON]:
        return {"name": str(self.name), "path": str(self.path), "readOnly": self.read_only or None}


def _port_number(raw: JSON) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise Invalid("port must be in the range 1-65535")
    return raw


@dataclass(frozen=True, slots=True)
class Port:
    name: ACName
    protocol: str
    port: int
    count: int = 1
    socket_activated: bool = False

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        port = field(obj, pointer, "port", _port_number)
        # The authors' code reads an absent or zero count as 1.
        count = optional(obj, pointer, "count", uint, 1) or 1
        if port + count - 1 > 65535:
            raise SchemaError(
                ptr(pointer, "count"), f"port range {port}-{port + count - 1} ends above 65535"
            )
        protocol = field(obj, pointer, "protocol", text)
        if not protocol:
            raise SchemaError(ptr(pointer, "protocol"), "must not be empty (e.g. tcp, udp)")
        return cls(
            field(obj, pointer, "name", ACName),
            protocol,
            port,
            count,
            optional(obj, pointer, "socketActivated", boolean, False),
        )

    def to_json(self) -> dict[str, JSON]:
        return {
            "name": str(self.name),
            "protocol": self.protocol,
            "port": self.port,
            "count": None if self.count == 1 else self.count,
            "socketActivated": self.socket_activated or None,
        }


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: EnvName
    value: str

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        return cls(field(obj, pointer, "name", EnvName), field(obj, pointer, "value", text))

    def to_json(self) -> dict[str, JSON]:
        return {"name": str(self.name), "value": self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    exec: tuple[str, ...] = ()
    user: str
    group: str
    supplementary_gids: tuple[int, ...] = ()
    event_handlers: tuple[EventHandler, ...] = ()
    working_directory: AbsolutePath | None = None
    environment: tuple[EnvVar, ...] = ()
    isolators: tuple[Isolator, ...] = ()
    mount_points: tuple[MountPoint, ...] = ()
    ports: tuple[Port, ...] = ()
    user_annotations: tuple[tuple[str, str], ...] = ()
    user_labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        user, group = field(obj, pointer, "user", text), field(obj, pointer, "group", text)
        for key, name in (("user", user), ("group", group)):
            if not name:
                raise SchemaError(ptr(pointer, key), "must not be empty (a name, a number or a path)")
        gids_key = "supplementaryGIDs" if "supplementaryGIDs" in obj else "supplementaryGids"
        no_gids: tuple[int, ...] = ()
        gids = optional(obj, pointer, gids_key, lambda raw: tuple(uint(g) for g in _list(raw)), no_gids)
        app = cls(
            exec=optional(obj, pointer, "exec", strings, ()),
            user=user,
            group=group,
            supplementary_gids=gids,
            event_handlers=items(obj, pointer, "eventHandlers", EventHandler.from_json),
            working_directory=optional(obj, pointer, "workingDirectory", AbsolutePath, None),
            environment=items(obj, pointer, "environment", EnvVar.from_json),
            isolators=parse_isolators(obj, pointer, allow_unknown=False),
            mount_points=items(obj, pointer, "mountPoints", MountPoint.from_json),
            ports=items(obj, pointer, "ports", Port.from_json),
            user_annotations=string_map(obj, pointer, "userAnnotations"),
            user_labels=string_map(obj, pointer, "userLabels"),
        )
        unique(ptr(pointer, "eventHandlers"), (h.name for h in app.event_handlers), "event handler")
        unique(ptr(pointer, "environment"), (e.name for e in app.environment), "environment variable")
        unique(ptr(pointer, "mountPoints"), (m.name for m in app.mount_points), "mount point")
        unique(ptr(pointer, "ports"), (p.name for p in app.ports), "port")
        return app

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "exec": list(self.exec),
                "user": self.user,
                "group": self.group,
                "supplementaryGIDs": list(self.supplementary_gids),
                "eventHandlers": [h.to_json() for h in self.event_handlers],
                "workingDirectory": self.working_directory,
                "environment": [e.to_json() for e in self.environment],
                "isolators": [i.to_json() for i in self.isolators],
                "mountPoints": [_drop_empty(m.to_json()) for m in self.mount_points],
                "ports": [_drop_empty(p.to_json()) for p in self.ports],
                "userAnnotations": dict(self.user_annotations),
                "userLabels": dict(self.user_labels),
            }
        )


def _list(raw: JSON) -> list[JSON]:
    if not isinstance(raw, list):
        raise Invalid("must be a list")
    return raw
