"""PodManifest (``spec/pods.md``) as a frozen dataclass."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Self

from stage0.errors import SchemaError
from stage0.schema.app import (
    App,
    NameValue,
    Port,
    _drop_empty,
    _port_number,
    parse_annotations,
    parse_labels,
)
from stage0.schema.fields import (
    JSON,
    Obj,
    boolean,
    field,
    items,
    optional,
    ptr,
    string_map,
    text,
    uint,
    unique,
)
from stage0.schema.image import check_kind
from stage0.schema.isolators import Isolator, parse_isolators
from stage0.schema.types import AbsolutePath, ACIdentifier, ACName, ImageID, Invalid, SemVer

POD_KIND = "PodManifest"
VOLUME_KINDS = ("empty", "host")


def _mode(raw: JSON) -> str:
    if not isinstance(raw, str) or not raw or any(c not in "01234567" for c in raw) or int(raw, 8) > 0o7777:
        raise Invalid(f"{raw!r} is not an octal file mode such as '0755'")
    return raw


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    name: ACName
    kind: str
    read_only: bool = False
    source: AbsolutePath | None = None
    recursive: bool | None = None
    mode: str | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        kind = field(obj, pointer, "kind", text)
        if kind not in VOLUME_KINDS:
            raise SchemaError(ptr(pointer, "kind"), f"unknown volume kind {kind!r} (known: empty, host)")
        volume = cls(
            name=field(obj, pointer, "name", ACName),
            kind=kind,
            read_only=optional(obj, pointer, "readOnly", boolean, False),
            source=optional(obj, pointer, "source", AbsolutePath, None) if obj.get("source") else None,
            recursive=optional(obj, pointer, "recursive", boolean, None),
            mode=optional(obj, pointer, "mode", _mode, None),
            uid=optional(obj, pointer, "uid", uint, None),
            gid=optional(obj, pointer, "gid", uint, None),
        )
        if kind == "host":
            if volume.source is None:
                raise SchemaError(ptr(pointer, "source"), "a host volume needs an absolute source path")
            for key in ("mode", "uid", "gid"):
                if obj.get(key) is not None:
                    raise SchemaError(ptr(pointer, key), "must not be set for a host volume")
        else:
            if volume.source is not None:
                raise SchemaError(ptr(pointer, "source"), "must not be set for an empty volume")
            if volume.recursive is not None:
                raise SchemaError(ptr(pointer, "recursive"), "only applies to host volumes")
        return volume

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "name": str(self.name),
                "kind": self.kind,
                "readOnly": self.read_only or None,
                "source": self.source,
                "recursive": self.recursive,
                "mode": self.mode,
                "uid": self.uid,
                "gid": self.gid,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Mount:
    volume: ACName
    path: AbsolutePath
    app_volume: Volume | None = None

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        inline = obj.get("appVolume")
        return cls(
            volume=field(obj, pointer, "volume", ACName),
            path=field(obj, pointer, "path", AbsolutePath),
            app_volume=None if inline is None else Volume.from_json(inline, ptr(pointer, "appVolume")),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "volume": str(self.volume),
                "path": str(self.path),
                "appVolume": None if self.app_volume is None else self.app_volume.to_json(),
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeImage:
    id: ImageID | None = None  # required once the pod is reified; a template may leave it out
    name: ACIdentifier | None = None
    labels: tuple[NameValue, ...] = ()

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        return cls(
            id=optional(obj, pointer, "id", ImageID, None),
            name=optional(obj, pointer, "name", ACIdentifier, None),
            labels=parse_labels(obj, pointer),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty({"id": self.id, "name": self.name, "labels": [x.to_json() for x in self.labels]})


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeApp:
    name: ACName
    image: RuntimeImage
    app: App | None = None
    read_only_rootfs: bool = False
    mounts: tuple[Mount, ...] = ()
    annotations: tuple[NameValue, ...] = ()

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        image = obj.get("image")
        if not isinstance(image, dict):
            raise SchemaError(ptr(pointer, "image"), "is required (an object with id, name, labels)")
        return cls(
            name=field(obj, pointer, "name", ACName),
            image=RuntimeImage.from_json(image, ptr(pointer, "image")),
            app=None if obj.get("app") is None else App.from_json(obj["app"], ptr(pointer, "app")),
            read_only_rootfs=optional(obj, pointer, "readOnlyRootFS", boolean, False),
            mounts=items(obj, pointer, "mounts", Mount.from_json),
            annotations=parse_annotations(obj, pointer),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "name": str(self.name),
                "image": self.image.to_json(),
                "app": None if self.app is None else self.app.to_json(),
                "readOnlyRootFS": self.read_only_rootfs or None,
                "mounts": [m.to_json() for m in self.mounts],
                "annotations": [a.to_json() for a in self.annotations],
            }
        )


def _host_ip(raw: JSON) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise Invalid(f"{raw!r} is not an IP address") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposedPort:
    name: ACName
    host_port: int
    host_ip: str | None = None
    pod_port: Port | None = None

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        pod_port = obj.get("podPort")
        return cls(
            name=field(obj, pointer, "name", ACName),
            host_port=field(obj, pointer, "hostPort", _port_number),
            host_ip=optional(obj, pointer, "hostIP", _host_ip, None),
            pod_port=None if pod_port is None else Port.from_json(pod_port, ptr(pointer, "podPort")),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "name": str(self.name),
                "hostPort": self.host_port,
                "hostIP": self.host_ip,
                "podPort": None if self.pod_port is None else _drop_empty(self.pod_port.to_json()),
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PodManifest:
    ac_version: SemVer
    apps: tuple[RuntimeApp, ...]
    volumes: tuple[Volume, ...] = ()
    isolators: tuple[Isolator, ...] = ()
    annotations: tuple[NameValue, ...] = ()
    ports: tuple[ExposedPort, ...] = ()
    user_annotations: tuple[tuple[str, str], ...] = ()
    user_labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, obj: Obj) -> Self:
        check_kind(obj, POD_KIND)
        if not isinstance(obj.get("apps"), list):
            raise SchemaError("/apps", "is required (a list of apps)")
        pod = cls(
            ac_version=field(obj, "", "acVersion", SemVer),
            apps=items(obj, "", "apps", RuntimeApp.from_json),
            volumes=items(obj, "", "volumes", Volume.from_json),
            isolators=parse_isolators(obj, "", allow_unknown=True),
            annotations=parse_annotations(obj, ""),
            ports=items(obj, "", "ports", ExposedPort.from_json),
            user_annotations=string_map(obj, "", "userAnnotations"),
            user_labels=string_map(obj, "", "userLabels"),
        )
        unique("/apps", (a.name for a in pod.apps), "app")
        unique("/volumes", (v.name for v in pod.volumes), "volume")
        unique("/ports", (p.name for p in pod.ports), "exposed port")
        return pod

    def to_json(self) -> dict[str, JSON]:
        dumped = _drop_empty(
            {
                "acKind": POD_KIND,
                "acVersion": str(self.ac_version),
                "volumes": [v.to_json() for v in self.volumes],
                "isolators": [i.to_json() for i in self.isolators],
                "annotations": [a.to_json() for a in self.annotations],
                "ports": [p.to_json() for p in self.ports],
                "userAnnotations": dict(self.user_annotations),
                "userLabels": dict(self.user_labels),
            }
        )
        dumped["apps"] = [a.to_json() for a in self.apps]  # required, even when empty
        return dumped
