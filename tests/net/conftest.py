"""The fetch world: nginx over TLS serving discovery pages, signed ACIs and keys for example.com,
all inside a private network namespace whose /etc/hosts maps example.com to 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stage0.images.aci.build import build_aci
from tests.conftest import REPO
from tests.harness.sandbox import Sandbox
from tests.harness.servers import Gpg, Nginx, make_pki

BUSYBOX = "/bin/busybox"
ARCH = {"x86_64": "amd64", "aarch64": "aarch64"}.get(os.uname().machine, os.uname().machine)
DISCOVERY = (
    "<html><head>\n"
    '<meta name="ac-discovery" content="example.com https://example.com/images/{name}-{version}-{os}-{arch}.{ext}">\n'
    '<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">\n'
    "</head></html>\n"
)


@dataclass
class World:
    dir: Path
    sandbox: Sandbox
    nginx: Nginx
    gpg: Gpg
    ca: Path
    keys: dict[str, str] = field(default_factory=dict)  # role → fingerprint
    images: dict[str, str] = field(default_factory=dict)  # name → image ID

    def url(self, name: str, version: str = "1.0") -> str:
        return f"https://example.com/images/{name}-{version}-linux-{ARCH}.aci"

    def path(self, name: str, version: str = "1.0") -> Path:
        return self.nginx.www / "images" / f"{name}-{version}-linux-{ARCH}.aci"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(REPO),
            "SSL_CERT_FILE": str(self.ca),
            **(extra or {}),
        }

    def argv(
        self, *args: str, home: Path, system_config: Path | None = None, sandboxed: bool = True
    ) -> list[str]:
        """nspod with its own data dir and configuration under ``home`` (entering the sandbox)."""
        config = [
            "--local-config",
            str(home / "etc"),
            "--system-config",
            str(system_config or home / "usr-lib"),
        ]
        argv = [sys.executable, "-m", "stage0", "--dir", str(home / "data"), *config, *args]
        return self.sandbox.argv(*argv) if sandboxed else argv

    def nspod(
        self,
        *args: str,
        home: Path,
        stdin: str | None = None,
        env: dict[str, str] | None = None,
        system_config: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args, home=home, system_config=system_config, sandboxed=False)
        return self.sandbox.run(*argv, env=self.env(env), stdin=stdin)


def _layout(
    root: Path, name: str, *, extra: dict[str, bytes] | None = None, deps: list[Any] | None = None
) -> Path:
    (root / "rootfs/bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "rootfs/bin/busybox")
    (root / "rootfs/bin/sh").symlink_to("busybox")
    for rel, data in (extra or {}).items():
        (root / "rootfs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "rootfs" / rel).write_bytes(data)
    manifest: dict[str, Any] = {
        "acKind": "ImageManifest",
        "acVersion": "0.8.11",
        "name": name,
        "labels": [
            {"name": "version", "value": "1.0"},
            {"name": "os", "value": "linux"},
            {"name": "arch", "value": ARCH},
        ],
        "app": {"exec": ["/bin/sh", "-c", "echo hello"], "user": "0", "group": "0"},
    }
    if deps:
        manifest["dependencies"] = deps
    (root / "manifest").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("world")
    sandbox = Sandbox(base, ["example.com", "other.example.com"])
    gpg = Gpg(base / "gnupg")
    try:
        ca, cert, key = make_pki(base / "pki", ["example.com", "other.example.com", "localhost"])
        nginx = Nginx.start(sandbox, base / "nginx", cert, key)
        world = World(base, sandbox, nginx, gpg, ca)
        try:
            _populate(world)
            yield world
        finally:
            nginx.stop()
    finally:
        gpg.close()
        sandbox.close()


def _populate(world: World) -> None:
    gpg, www = world.gpg, world.nginx.www
    for role in ("good", "other", "revoked", "masked"):
        world.keys[role] = gpg.new_key(f"nspod {role} signer <{role}@example.com>")
    (www / "index.html").write_text(DISCOVERY)
    (www / "pubkeys.gpg").write_bytes(gpg.export(world.keys["good"]))
    (www / "other.gpg").write_bytes(gpg.export(world.keys["other"]))
    build = world.dir / "build"

    def publish(name: str, signer: str | None, **layout: Any) -> Path:
        target = world.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        world.images[name] = build_aci(
            str(_layout(build / name.replace("/", "_"), name, **layout)), str(target)
        )
        if signer:
            gpg.sign(world.keys[signer], target)
        return target

    publish("example.com/busybox", "good")
    publish("example.com/base", "good", extra={"etc/base-release": b"base 1.0\n"})
    publish(
        "example.com/app",
        "good",
        extra={"app/run": b"run\n"},
        deps=[{"imageName": "example.com/base", "labels": [{"name": "version", "value": "1.0"}]}],
    )
    publish("example.com/unsigned", None)
    publish("example.com/wrongkey", "other")
    tampered = publish("example.com/tampered", "good")
    with open(tampered, "ab") as file:
        file.write(b"\0" * 512)  # appended after signing: the signature no longer matches
    publish("example.com/revoked", "revoked")
    gpg.revoke(world.keys["revoked"])
    publish("example.com/masked", "masked")
    publish("example.com/big", "good", extra={"data/random": os.urandom(12 << 20)})
    (www / "slow").mkdir()
    for suffix in ("", ".asc"):
        shutil.copy(str(world.path("example.com/big")) + suffix, www / "slow" / f"big.aci{suffix}")
    for area in ("basic", "bearer", "cached"):
        (www / area).mkdir()
        for suffix in ("", ".asc"):
            shutil.copy(str(world.path("example.com/busybox")) + suffix, www / area / f"busybox.aci{suffix}")


def trust_good(world: World, home: Path) -> None:
    """Trust the good key for example.com, straight from its file."""
    key = home / "good.asc"
    home.mkdir(parents=True, exist_ok=True)
    key.write_bytes(world.gpg.export(world.keys["good"]))
    result = world.nspod(
        "trust", "--prefix", "example.com", "--skip-fingerprint-review", str(key), home=home
    )
    assert result.returncode == 0, result.stderr
