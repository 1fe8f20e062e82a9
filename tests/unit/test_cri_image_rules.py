"""The CRI image service's pure rules: names as the CRI gives them, the config's User as uid or
username, auth configs as credentials, nspod.conf's [cri] policy, registries.conf mirrors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from stage0.cri.image_catalog import normalize, user_of
from stage0.errors import Error, UsageError
from stage0.oci.reference import registry_mirrors
from stage0.options import GlobalOptions

api = pytest.importorskip("stage0.cri.proto.api_pb2")


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("busybox", "docker://docker.io/library/busybox:latest"),
        (
            "gcr.io/k8s-staging-cri-tools/test-image-tag:test",
            "docker://gcr.io/k8s-staging-cri-tools/test-image-tag:test",
        ),
        ("127.0.0.1:5000/a/b@sha256:" + "0" * 64, "docker://127.0.0.1:5000/a/b@sha256:" + "0" * 64),
    ],
)
def test_cri_names_are_docker_references(name: str, canonical: str) -> None:
    assert normalize(name).canonical() == canonical


@pytest.mark.parametrize("name", ["", "docker://busybox", "Bad Name", "a/b@sha256:12"])
def test_bad_names_are_invalid_arguments(name: str) -> None:
    with pytest.raises(UsageError):
        normalize(name)


@pytest.mark.parametrize(
    ("user", "expected"),
    [("", (None, "")), ("1002", (1002, "")), ("1003:1004", (1003, "")), ("www-data", (None, "www-data")),
     ("www-data:1004", (None, "www-data")), (":50", (None, ""))],
)  # fmt: skip
def test_user_as_uid_or_username(user: str, expected: tuple[int | None, str]) -> None:
    assert user_of({"config": {"User": user}}) == expected
    assert user_of({}) == (None, "")


def test_auth_configs_as_credentials() -> None:
    from stage0.cri.images import credentials

    basic = "Basic " + base64.b64encode(b"kube:pw").decode()
    assert credentials(api.AuthConfig(username="kube", password="pw")).header == basic  # type: ignore[union-attr]
    encoded = base64.b64encode(b"kube:pw").decode()
    assert credentials(api.AuthConfig(auth=encoded)).header == basic  # type: ignore[union-attr]
    assert credentials(api.AuthConfig(registry_token="t0k")).header == "Bearer t0k"  # type: ignore[union-attr]
    assert credentials(api.AuthConfig()) is None and credentials(None) is None
    with pytest.raises(UsageError, match="user:password"):
        credentials(api.AuthConfig(auth=base64.b64encode(b"nocolon").decode()))
    with pytest.raises(UsageError, match="identity tokens"):
        credentials(api.AuthConfig(identity_token="refresh"))
    assert "pw" not in repr(credentials(api.AuthConfig(username="kube", password="pw")))


def test_the_cri_policy_of_nspod_conf(tmp_path: Path) -> None:
    from stage0.cri.images import pull_settings

    system, local = tmp_path / "system", tmp_path / "local"
    system.mkdir()
    local.mkdir()
    options = GlobalOptions(system_config=str(system), local_config=str(local))
    assert not pull_settings(options).require_signatures
    (system / "nspod.conf").write_text("[cri]\nrequire-signatures = true\n")
    assert pull_settings(options).require_signatures
    (local / "nspod.conf").write_text("[pool]\nsize = 1\n[cri]\nrequire-signatures = false\n")
    assert not pull_settings(options).require_signatures  # the local configuration wins
    (local / "nspod.conf").write_text('[cri]\nrequire-signatures = "yes"\n')
    with pytest.raises(Error, match="require-signatures"):
        pull_settings(options)


def test_registries_conf_mirrors(tmp_path: Path) -> None:
    system, local = tmp_path / "system", tmp_path / "local"
    system.mkdir()
    local.mkdir()
    (system / "registries.conf").write_text("mirror = gcr.io=mirror.example:5000\nmirror = quay.io=q:1\n")
    (local / "registries.conf").write_text("# the test's\nmirror = gcr.io=127.0.0.1:5000  # local\n")
    mirrors = registry_mirrors((str(system), str(local)))
    assert mirrors == {"gcr.io": "127.0.0.1:5000", "quay.io": "q:1"}
    (local / "registries.conf").write_text("mirror = gcr.io\n")
    with pytest.raises(UsageError, match="REGISTRY=MIRROR"):
        registry_mirrors((str(system), str(local)))
