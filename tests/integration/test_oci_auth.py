"""Registries as they are run for real (issue #13): TLS with a CA of their own, Basic credentials
(htpasswd), and Bearer tokens from a token service. nspod trusts the CA through its config's
``certs.d/HOST:PORT/`` or ``$SSL_CERT_FILE``, and finds credentials in auth.d or docker's
config.json. What each server saw is what is asserted."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.registry import BASIC, TOKEN, Layout, Registry
from tests.harness.servers import make_pki
from tests.harness.token import ISSUER, SERVICE, TokenServer

pytestmark = pytest.mark.systemd
REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "tester", "s3cret-pass"


@dataclass
class Secured:
    basic: Registry
    token: Registry
    tokens: TokenServer
    ca: Path
    base: Path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secured")
    ca, cert, key = make_pki(base / "pki", ["localhost"])
    (base / "certs").mkdir()
    (base / "certs/ca.crt").write_bytes(ca.read_bytes())  # skopeo's --dest-cert-dir
    htpasswd = subprocess.run(
        ["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True
    )
    (base / "htpasswd").write_text(htpasswd.stdout)
    tokens = TokenServer(base / "token", cert, key, USER, PASSWORD)
    started: list[Registry] = []
    try:
        started.append(
            Registry.start(base / "basic", tls=(cert, key), auth=BASIC.format(path=base / "htpasswd"))
        )
        started.append(Registry.start(base / "tokened", tls=(cert, key), auth=TOKEN.format(
            realm=tokens.realm, service=SERVICE, issuer=ISSUER, bundle=tokens.bundle)))  # fmt: skip
        layout = Layout(base / "layout")
        layout.busybox("busybox")
        layout.config("busybox", "--config.cmd", "/bin/echo", "--config.cmd", "secured hello")
        for registry in started:
            layout.push("busybox", f"{registry.host}/team/busybox:1", f"--dest-cert-dir={base / 'certs'}",
                        f"--dest-creds={USER}:{PASSWORD}")  # fmt: skip
        yield Secured(started[0], started[1], tokens, ca, base)
    finally:
        for registry in started:
            registry.stop()
        tokens.stop()


def nspod(
    data: Path, config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "stage0", "--dir", str(data), f"--local-config={config}",
            "--insecure-options=image", *args]  # fmt: skip
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DOCKER_CONFIG": str(config / "docker"),
        **(env or {}),
    }
    environment.pop("REGISTRY_AUTH_FILE", None)
    return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=environment)


def docker_login(config: Path, host: str, user: str, password: str) -> None:
    (config / "docker").mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config / "docker/config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


def test_tls_and_basic_credentials_from_docker_config_and_a_ca_in_certs_d(
    secured: Secured, tmp_path: Path
) -> None:
    host = secured.basic.host
    config = tmp_path / "etc"
    (config / "certs.d" / host).mkdir(parents=True)
    (config / "certs.d" / host / "ca.crt").write_bytes(secured.ca.read_bytes())
    ref = f"docker://{host}/team/busybox:1"
    anonymous = nspod(tmp_path / "data", config, "fetch", ref)
    assert anonymous.returncode == 254 and "user name and password" in anonymous.stderr, anonymous.stderr
    docker_login(config, host, USER, "wrong")
    wrong = nspod(tmp_path / "data", config, "fetch", ref)
    assert wrong.returncode == 254 and "refused access" in wrong.stderr and "credentials" in wrong.stderr, (
        wrong.stderr
    )
    docker_login(config, host, USER, PASSWORD)
    done = nspod(tmp_path / "data", config, "run", ref)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("secured hello")


def test_an_unknown_ca_is_refused_with_a_hint(secured: Secured, tmp_path: Path) -> None:
    done = nspod(
        tmp_path / "data", tmp_path / "etc", "fetch", f"docker://{secured.basic.host}/team/busybox:1"
    )
    assert done.returncode == 254 and "TLS verification" in done.stderr and "hint" in done.stderr, (
        done.stderr
    )


def test_bearer_tokens_from_the_registrys_token_service(secured: Secured, tmp_path: Path) -> None:
    config = tmp_path / "etc"
    (config / "auth.d").mkdir(parents=True)
    (config / "auth.d/registry.json").write_text(json.dumps({
        "nspodKind": "auth", "nspodVersion": "v1", "domains": [secured.token.host], "type": "basic",
        "credentials": {"user": USER, "password": PASSWORD},
    }))  # fmt: skip
    before = len(secured.tokens.requests)
    done = nspod(tmp_path / "data", config, "run", f"docker://{secured.token.host}/team/busybox:1",
                 env={"SSL_CERT_FILE": str(secured.ca)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("secured hello")
    asked = secured.tokens.requests[before:]
    assert asked and all("scope=repository%3Ateam%2Fbusybox%3Apull" in a for a in asked), asked
