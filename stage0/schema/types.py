"""Validated value types of the appc schema (``spec/types.md``).

Each type is a ``str`` (or ``Decimal``) subclass whose constructor refuses invalid input with
:class:`Invalid`; the manifest parser turns that into a :class:`SchemaError` naming the field.
The regular expressions are the spec's prose; where the authors' Go code is laxer (it accepts
``a..b`` as an identifier and ``a--b`` as a name) nspod follows the prose — see README.md here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Self
from urllib.parse import urlsplit

AC_IDENTIFIER_RE = r"^[a-z0-9]+([-._~/][a-z0-9]+)*$"
AC_NAME_RE = r"^[a-z0-9]+([-][a-z0-9]+)*$"
IMAGE_ID_RE = r"^sha512-[0-9a-f]{128}$"
ENV_NAME_RE = r"^[A-Za-z_][A-Za-z_0-9.-]*$"
SEMVER_RE = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
RFC3339_RE = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"

# Valid os/arch label pairs (schema/types/labels.go ValidOSArch; a superset of the prose list).
VALID_OS_ARCH: dict[str, frozenset[str]] = {
    "linux": frozenset(
        {"amd64", "i386", "aarch64", "aarch64_be", "armv6l", "armv7l", "armv7b", "ppc64", "ppc64le", "s390x"}
    ),
    "freebsd": frozenset({"amd64", "i386", "arm"}),
    "darwin": frozenset({"x86_64", "i386"}),
}


class Invalid(ValueError):
    """A value is not of its type; the message says why, without naming the field."""


class _Pattern(str):
    PATTERN: re.Pattern[str]
    WHAT: str

    def __new__(cls, value: str) -> Self:
        if not isinstance(value, str):
            raise Invalid(f"must be a string, not {type(value).__name__}")
        if not cls.PATTERN.fullmatch(value):
            raise Invalid(f"{value!r} is not a valid {cls.WHAT}")
        return super().__new__(cls, value)


class ACIdentifier(_Pattern):
    """Image names, label and annotation names, isolator names: ``example.com/app``."""

    PATTERN = re.compile(AC_IDENTIFIER_RE)
    WHAT = "AC identifier (lowercase letters, digits and -._~/ between them)"


class ACName(_Pattern):
    """App, volume, port and mount point names: ``web-1``."""

    PATTERN = re.compile(AC_NAME_RE)
    WHAT = "AC name (lowercase letters, digits and single dashes between them)"


class ImageID(_Pattern):
    """``sha512-`` and the 128 hex digits of the SHA-512 of the uncompressed image tar."""

    PATTERN = re.compile(IMAGE_ID_RE)
    WHAT = "image ID (sha512- and 128 lowercase hex digits)"


class EnvName(_Pattern):
    PATTERN = re.compile(ENV_NAME_RE)
    WHAT = "environment variable name"


class SemVer(_Pattern):
    PATTERN = re.compile(SEMVER_RE)
    WHAT = "semantic version (SemVer 2.0.0)"

    def __new__(cls, value: str) -> Self:
        version = super().__new__(cls, value)
        if version.split("+")[0].split("-")[0] == "0.0.0":
            raise Invalid("version 0.0.0 is not allowed")
        return version

    @property
    def major(self) -> int:
        return int(self.split(".", 1)[0])


class Timestamp(_Pattern):
    PATTERN = re.compile(RFC3339_RE)
    WHAT = "RFC 3339 date-time (e.g. 2014-10-27T19:32:58-07:00)"

    def __new__(cls, value: str) -> Self:
        stamp = super().__new__(cls, value)
        try:
            datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise Invalid(f"{value!r} is not a real date and time") from None
        return stamp


class HTTPURL(str):
    def __new__(cls, value: str) -> Self:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Invalid(f"{value!r} is not an http or https URL")
        return super().__new__(cls, value)


class AbsolutePath(str):
    def __new__(cls, value: str) -> Self:
        if not value.startswith("/"):
            raise Invalid(f"{value!r} is not an absolute path")
        if "\0" in value:
            raise Invalid("a path must not contain NUL")
        return super().__new__(cls, value)
