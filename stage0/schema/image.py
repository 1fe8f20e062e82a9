"""ImageManifest (``spec/aci.md`` "Image Manifest Schema") as a frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from stage0.errors import SchemaError
from stage0.schema.app import App, NameValue, _drop_empty, parse_annotations, parse_labels
from stage0.schema.fields import JSON, Obj, field, items, optional, ptr, strings, text, uint, value
from stage0.schema.types import AbsolutePath, ACIdentifier, ImageID, SemVer

IMAGE_KIND = "ImageManifest"


def check_kind(obj: Obj, expected: str) -> None:
    kind = field(obj, "", "acKind", text)
    if kind != expected:
        raise SchemaError("/acKind", f"is {kind!r}, expected {expected!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dependency:
    image_name: ACIdentifier
    image_id: ImageID | None = None
    labels: tuple[NameValue, ...] = ()
    size: int | None = None

    @classmethod
    def from_json(cls, obj: Obj, pointer: str) -> Self:
        return cls(
            image_name=field(obj, pointer, "imageName", ACIdentifier),
            image_id=optional(obj, pointer, "imageID", ImageID, None),
            labels=parse_labels(obj, pointer),
            size=optional(obj, pointer, "size", uint, None),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "imageName": str(self.image_name),
                "imageID": self.image_id,
                "labels": [label.to_json() for label in self.labels],
                "size": self.size,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageManifest:
    ac_version: SemVer
    name: ACIdentifier
    labels: tuple[NameValue, ...] = ()
    app: App | None = None
    dependencies: tuple[Dependency, ...] = ()
    path_whitelist: tuple[AbsolutePath, ...] = ()
    annotations: tuple[NameValue, ...] = ()

    @classmethod
    def from_json(cls, obj: Obj) -> Self:
        """Build from a document already checked against the JSON Schema (see boundary.py)."""
        check_kind(obj, IMAGE_KIND)
        no_paths: tuple[str, ...] = ()
        whitelist = optional(obj, "", "pathWhitelist", strings, no_paths)
        return cls(
            ac_version=field(obj, "", "acVersion", SemVer),
            name=field(obj, "", "name", ACIdentifier),
            labels=parse_labels(obj, ""),
            app=None if obj.get("app") is None else App.from_json(obj["app"], "/app"),
            dependencies=items(obj, "", "dependencies", Dependency.from_json),
            path_whitelist=tuple(
                value(ptr("/pathWhitelist", i), AbsolutePath, p) for i, p in enumerate(whitelist)
            ),
            annotations=parse_annotations(obj, ""),
        )

    def to_json(self) -> dict[str, JSON]:
        return _drop_empty(
            {
                "acKind": IMAGE_KIND,
                "acVersion": str(self.ac_version),
                "name": str(self.name),
                "labels": [label.to_json() for label in self.labels],
                "app": None if self.app is None else self.app.to_json(),
                "dependencies": [d.to_json() for d in self.dependencies],
                "pathWhitelist": list(self.path_whitelist),
                "annotations": [a.to_json() for a in self.annotations],
            }
        )

    def label(self, name: str) -> str | None:
        return next((label.value for label in self.labels if label.name == name), None)

    def annotation(self, name: str) -> str | None:
        return next((a.value for a in self.annotations if a.name == name), None)
