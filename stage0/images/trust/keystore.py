"""Trusted keys on disk, in rkt's layout, under the system and the local config directory::

    trustedkeys/root.d/<fingerprint>                  trusted for every image
    trustedkeys/prefix.d/<prefix>/<fingerprint>       trusted for images named <prefix> or below it

A file is named by the lowercase hex fingerprint of the key it holds (armored or binary). The
keys for image ``example.com/a/b`` are those of root.d and of the prefixes ``example.com``,
``example.com/a`` and ``example.com/a/b`` (whole path components: ``example.com/a`` does not cover
``example.com/ab``). An empty local file masks the system key of the same name and place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind
from stage0.host.atomic import write_atomic
from stage0.schema.types import ACIdentifier, Invalid

_FINGERPRINT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class TrustError(Error):
    kind = ErrorKind.INVALID_ARGUMENT
    hint = "see 'nspod trust --help'"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    fingerprint: str
    path: str
    prefix: str | None  # None: a root key


def check_prefix(prefix: str) -> str:
    if "://" in prefix:
        raise TrustError(
            f"prefix {prefix!r} must be an image name prefix, not a URL",
            hint="e.g. --prefix example.com/app",
        )
    try:
        return str(ACIdentifier(prefix.rstrip("/")))
    except Invalid as error:
        raise TrustError(f"bad prefix {prefix!r}: {error}") from None


class Keystore:
    def __init__(self, system_config: str, local_config: str) -> None:
        self.system = os.path.join(system_config, "trustedkeys")
        self.local = os.path.join(local_config, "trustedkeys")

    @staticmethod
    def _relative_dirs(name: str) -> list[tuple[str, str | None]]:
        parts = name.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        return [("root.d", None), *((os.path.join("prefix.d", p), p) for p in prefixes)]

    def keys_for(self, name: str) -> list[TrustedKey]:
        """The keys that may sign an image called ``name``, masks applied."""
        keys: dict[tuple[str, str], TrustedKey] = {}
        for rel, prefix in self._relative_dirs(name):
            for base in (self.system, self.local):
                directory = os.path.join(base, rel)
                try:
                    names = sorted(os.listdir(directory))
                except (FileNotFoundError, NotADirectoryError):
                    continue
                for fingerprint in filter(_FINGERPRINT.fullmatch, names):
                    path = os.path.join(directory, fingerprint)
                    if not os.path.isfile(path):
                        continue
                    if os.path.getsize(path) == 0:
                        keys.pop((rel, fingerprint), None)  # an empty local file masks the system key
                    else:
                        keys[(rel, fingerprint)] = TrustedKey(fingerprint, path, prefix)
        return list(keys.values())

    def add(self, fingerprint: str, armored: bytes, prefix: str | None) -> tuple[str, bool]:
        """Store a key in the local keystore; returns (path, whether it was new)."""
        directory = os.path.join(
            self.local, "root.d" if prefix is None else os.path.join("prefix.d", prefix)
        )
        path = os.path.join(directory, fingerprint.lower())
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return path, False
        os.makedirs(directory, 0o755, exist_ok=True)
        write_atomic(path, armored)
        return path, True
