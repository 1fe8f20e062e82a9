"""Registry credentials users already have: nspod's auth.d (by host), then the containers tools'
``auth.json`` and docker's ``config.json`` (``{"auths": {"HOST[:PORT]": {"auth": base64(user:pw)}}}``),
in the order podman reads them."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable

from stage0.images.fetch.auth import ConfigError, Credentials


def auth_files(environ: dict[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    home = env.get("HOME", "/root")
    files = [env.get("REGISTRY_AUTH_FILE", "")]
    if env.get("XDG_RUNTIME_DIR"):
        files.append(os.path.join(env["XDG_RUNTIME_DIR"], "containers/auth.json"))
    files += [
        os.path.join(env.get("XDG_CONFIG_HOME", os.path.join(home, ".config")), "containers/auth.json"),
        os.path.join(env.get("DOCKER_CONFIG", os.path.join(home, ".docker")), "config.json"),
    ]
    return [f for f in files if f]


def _from_file(path: str, registry: str) -> Credentials | None:
    try:
        with open(path, "rb") as file:
            doc = json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read registry credentials: {error}") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    aliases = ("docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io")
    keys = aliases if registry == "docker.io" else (registry, f"https://{registry}", f"http://{registry}")
    for key in keys:
        entry = auths.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, colon, _ = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ConfigError(f"{path}: the auth of {key} is not base64 of user:password") from None
            if not colon or not user:
                raise ConfigError(f"{path}: the auth of {key} is not base64 of user:password")
            return Credentials("Basic " + entry["auth"])
    return None


def registry_credentials(
    registry: str, auth_d: Callable[[str], Credentials | None], files: list[str] | None = None
) -> Credentials | None:
    """The credentials for ``registry`` (HOST[:PORT]), or None to go anonymously."""
    found = auth_d(registry)
    if found is not None:
        return found
    for path in auth_files() if files is None else files:
        found = _from_file(path, registry)
        if found is not None:
            return found
    return None
