"""Small helpers the manifest parsers share: JSON pointers, typed field access, uniqueness."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from stage0.errors import SchemaError
from stage0.schema.types import Invalid

T = TypeVar("T")
JSON = Any  # a value as json.loads returns it
Obj = Mapping[str, JSON]


def ptr(base: str, key: str | int) -> str:
    """Extend an RFC 6901 JSON pointer by one step."""
    step = str(key).replace("~", "~0").replace("/", "~1")
    return f"{base}/{step}"


def value(pointer: str, make: Callable[[Any], T], raw: JSON) -> T:
    """Build a value type from ``raw``; a bad value becomes a SchemaError at ``pointer``."""
    try:
        return make(raw)
    except Invalid as error:
        raise SchemaError(pointer, str(error)) from None


def field(obj: Obj, pointer: str, key: str, make: Callable[[Any], T]) -> T:
    if key not in obj:
        raise SchemaError(ptr(pointer, key), "is required")
    return value(ptr(pointer, key), make, obj[key])


def optional(obj: Obj, pointer: str, key: str, make: Callable[[Any], T], default: T) -> T:
    raw = obj.get(key)
    return default if raw is None else value(ptr(pointer, key), make, raw)


def items(obj: Obj, pointer: str, key: str, make: Callable[[Obj, str], T]) -> tuple[T, ...]:
    """Parse the (optional) list ``obj[key]`` element by element."""
    raw = obj.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SchemaError(ptr(pointer, key), "must be a list")
    return tuple(make(element, ptr(ptr(pointer, key), i)) for i, element in enumerate(raw))


def unique(pointer: str, names: Iterable[str], what: str) -> None:
    """Refuse a repeated name; the error points at the second occurrence."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise SchemaError(ptr(ptr(pointer, i), "name"), f"duplicate {what} {name!r}")
        seen.add(name)


def string_map(obj: Obj, pointer: str, key: str) -> tuple[tuple[str, str], ...]:
    """``userLabels``-style objects, kept in document order so dumps round-trip exactly."""
    raw = obj.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise SchemaError(ptr(pointer, key), "must be an object of strings")
    return tuple(raw.items())


def text(raw: JSON) -> str:
    if not isinstance(raw, str):
        raise Invalid(f"must be a string, not {type(raw).__name__}")
    return raw


def boolean(raw: JSON) -> bool:
    if not isinstance(raw, bool):
        raise Invalid("must be true or false")
    return raw


def uint(raw: JSON) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise Invalid("must be a non-negative integer")
    return raw


def strings(raw: JSON) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise Invalid("must be a list of strings")
    return tuple(raw)
