"""Where JSON enters: bytes → JSON Schema check (structure) → frozen dataclasses (cross-field rules).

Both steps report the first problem as a :class:`SchemaError` naming the field by JSON pointer.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from stage0.errors import SchemaError
from stage0.schema.fields import ptr
from stage0.schema.image import IMAGE_KIND, ImageManifest
from stage0.schema.pod import POD_KIND, PodManifest

if TYPE_CHECKING:
    import jsonschema

Manifest = ImageManifest | PodManifest
_SCHEMA_FILES = {
    IMAGE_KIND: "image-manifest.json",
    POD_KIND: "pod-manifest.json",
    "PodFile": "pod-file.json",
}


@functools.cache
def schema(kind: str) -> dict[str, Any]:
    text = resources.files("stage0.schema").joinpath("schemas", _SCHEMA_FILES[kind]).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    import jsonschema  # slow to import; only verbs that read manifests pay for it

    return jsonschema.Draft202012Validator(schema(kind))


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    """A jsonschema error as (pointer, problem) in the words the Python checks use."""
    pointer = "".join(ptr("", step) for step in error.absolute_path)
    # jsonschema types these as "maybe unset"; for the validators matched below they are set
    expected: Any = error.validator_value
    instance: Any = error.instance
    subschema: Any = error.schema
    match error.validator:
        case "required":
            missing = next(k for k in expected if k not in instance)
            return ptr(pointer, missing), "is required"
        case "pattern":
            return pointer, f"{instance!r} is not a valid {subschema.get('title', 'value')}"
        case "type":
            return pointer, f"must be of type {expected}, not {type(instance).__name__}"
        case "const":
            return pointer, f"is {instance!r}, expected {expected!r}"
        case "enum":
            return pointer, f"{instance!r} is not one of {', '.join(map(str, expected))}"
        case "minimum" | "maximum":
            return pointer, f"{instance!r} is out of range"
        case "minItems" | "minLength":
            return pointer, "must not be empty"
        case _:
            return pointer, error.message


def check_structure(obj: dict[str, Any], kind: str) -> None:
    """Check ``obj`` against the shipped JSON Schema for ``kind``; the first problem, by JSON pointer."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(obj))
    if error is not None:
        # anyOf(null, app): report the app's own problem, not "is not valid under any schema"
        while error.context:
            error = jsonschema.exceptions.best_match(error.context) or error
            if not error.context:
                break
        raise SchemaError(*_describe(error))


def load_json(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except UnicodeDecodeError:
        raise SchemaError("", "is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise SchemaError(
            "", f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(obj, dict):
        raise SchemaError("", "must be a JSON object")
    return obj


def parse_manifest(
    data: bytes, source: str, *, expect: str | None = None, trusted: bool = False
) -> Manifest:
    """Parse an ImageManifest or PodManifest (chosen by ``acKind`` unless ``expect`` is given).

    ``trusted``: the document passed this check before (a manifest from the store), so the JSON
    Schema pass, and the cost of importing jsonschema, is skipped; the dataclasses still check it.
    """
    try:
        obj = load_json(data)
        kind = expect or obj.get("acKind")
        if kind not in _SCHEMA_FILES:
            raise SchemaError("/acKind", f"is {obj.get('acKind')!r}, expected ImageManifest or PodManifest")
        if not trusted:
            check_structure(obj, kind)
        return ImageManifest.from_json(obj) if kind == IMAGE_KIND else PodManifest.from_json(obj)
    except SchemaError as error:
        raise error.at(source) from None


def parse_image_manifest(data: bytes, source: str, *, trusted: bool = False) -> ImageManifest:
    manifest = parse_manifest(data, source, expect=IMAGE_KIND, trusted=trusted)
    assert isinstance(manifest, ImageManifest)
    return manifest


def parse_pod_manifest(data: bytes, source: str) -> PodManifest:
    manifest = parse_manifest(data, source, expect=POD_KIND)
    assert isinstance(manifest, PodManifest)
    return manifest


def dump(manifest: Manifest, *, pretty: bool = False) -> str:
    return json.dumps(
        manifest.to_json(), indent=2 if pretty else None, separators=None if pretty else (",", ":")
    )
