"""Per-domain credentials from ``auth.d/*.json`` in the system and local config directories::

    {"nspodKind": "auth", "nspodVersion": "v1", "domains": ["example.com"],
     "type": "basic", "credentials": {"user": "alice", "password": "secret"}}
    {"nspodKind": "auth", "nspodVersion": "v1", "domains": ["example.com"],
     "type": "bearer", "credentials": {"token": "…"}}

Local files override system ones for the same domain. rkt's ``rktKind``/``rktVersion`` and its
``oauth`` type are accepted too, so existing rkt configuration keeps working.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from stage0.errors import Error, ErrorKind


class ConfigError(Error):
    kind = ErrorKind.FAILED_PRECONDITION
    hint = "fix or remove the file named above"


@dataclass(frozen=True, slots=True)
class Credentials:
    header: str  # the Authorization header value

    def __repr__(self) -> str:  # never print secrets, even under --debug
        return "Credentials(<redacted>)"


def _parse(path: str) -> dict[str, Credentials]:
    try:
        with open(path, "rb") as file:
            doc = json.load(file)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read auth config: {error}") from None
    kind = doc.get("nspodKind", doc.get("rktKind")) if isinstance(doc, dict) else None
    if kind != "auth":
        raise ConfigError(f'{path}: not an auth config (nspodKind must be "auth")')
    version = doc.get("nspodVersion", doc.get("rktVersion"))
    if version != "v1":
        raise ConfigError(f'{path}: unknown version {version!r} (expected "v1")')
    domains, kind, creds = doc.get("domains"), doc.get("type"), doc.get("credentials")
    if not isinstance(domains, list) or not domains or not all(isinstance(d, str) and d for d in domains):
        raise ConfigError(f"{path}: /domains must be a non-empty list of host names")
    if not isinstance(creds, dict):
        raise ConfigError(f"{path}: /credentials must be an object")
    if kind == "basic":
        user, password = creds.get("user"), creds.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise ConfigError(f"{path}: /credentials needs string fields user and password")
        header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif kind in ("bearer", "oauth"):
        token = creds.get("token")
        if not isinstance(token, str) or not token:
            raise ConfigError(f"{path}: /credentials/token must be a non-empty string")
        header = "Bearer " + token
    else:
        raise ConfigError(f'{path}: /type must be "basic" or "bearer", not {kind!r}')
    return {domain.lower(): Credentials(header) for domain in domains}


def load_auth(config_dirs: list[str]) -> Mapping[str, Credentials]:
    """Credentials by host name; later directories (the local config) win."""
    found: dict[str, Credentials] = {}
    for directory in config_dirs:
        auth_dir = os.path.join(directory, "auth.d")
        if not os.path.isdir(auth_dir):
            continue
        for name in sorted(os.listdir(auth_dir)):
            if name.endswith(".json"):
                found.update(_parse(os.path.join(auth_dir, name)))
    return found
