"""OCI images (issue #13), continued: cosign trust policies, resumed downloads, registries named
insecure in registries.conf, and the image verbs on layered images. Same registry fixture as
tests/integration/test_oci.py (a module of its own, a registry of its own)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.registry import cosign_sign
from tests.integration.test_oci import Oci, oci  # noqa: F401 (the fixture)

pytestmark = pytest.mark.systemd


def test_cosign_signatures_decide_under_a_trust_policy(oci: Oci, tmp_path: Path) -> None:  # noqa: F811
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    trusted, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(
        trusted.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for name, key in (("signed", trusted), ("resigned", other), ("unsigned", None)):
        oci.layout.push("busybox", f"{oci.registry.host}/policy/{name}:1")
        if key is not None:
            cosign_sign(oci.layout, oci.registry, f"policy/{name}", "1", key)
    config = tmp_path / "etc"
    data = tmp_path / "data"

    def nspod(*args: str) -> subprocess.CompletedProcess[str]:
        return Oci(oci.registry, oci.layout, data)("--local-config", str(config), *args, insecure="http")

    unverified = nspod("fetch", oci.ref("policy/signed:1"))
    assert unverified.returncode == 254 and "--cosign-key" in unverified.stderr, unverified.stderr
    trusted_now = nspod(
        "trust",
        "--prefix",
        f"docker://{oci.registry.host}/policy",
        "--cosign-key",
        str(pub),
        "--skip-fingerprint-review",
    )
    assert trusted_now.returncode == 0, trusted_now.stderr
    signed = nspod("fetch", oci.ref("policy/signed:1"))
    assert signed.returncode == 0 and "signature verified" in signed.stderr, signed.stderr
    listed = json.loads(nspod("image", "list", "--format=json").stdout)
    assert next(i["signer"] for i in listed if i["id"] == signed.stdout.strip()).startswith("cosign:")
    resigned = nspod("fetch", oci.ref("policy/resigned:1"))
    assert resigned.returncode == 254 and "no trusted key" in resigned.stderr, resigned.stderr
    unsigned = nspod("fetch", oci.ref("policy/unsigned:1"))
    assert unsigned.returncode == 254 and "is not signed" in unsigned.stderr, unsigned.stderr
    assert "policy/resigned" not in nspod("image", "list").stdout


def test_an_interrupted_download_resumes_where_it_stopped(oci: Oci, tmp_path: Path) -> None:  # noqa: F811
    payload = os.urandom(3 << 20)
    oci.layout.layer("busybox", "resume", {"payload.txt": payload.hex()})
    oci.layout.push("resume", f"{oci.registry.host}/resume:1")
    layer = oci.layout.manifest("resume")["layers"][-1]["digest"]
    blob = oci.layout.blob(layer)
    store = Oci(oci.registry, oci.layout, tmp_path / "data")
    assert store("image", "list").returncode == 0  # the store exists
    part = store.data / "images/downloads" / (layer.replace(":", "-") + ".part")
    part.write_bytes(blob[: len(blob) // 2])  # what a killed pull left
    since = len(oci.registry.requests())
    done = store("fetch", store.ref("resume:1"))
    assert done.returncode == 0, done.stderr
    asked = [(p, s) for m, p, s in oci.registry.requests()[since:] if p.endswith(layer)]
    assert asked == [(f"/v2/resume/blobs/{layer}", 206)], asked
    assert not part.exists()
    assert store.sh("resume:1", "wc -c < /payload.txt").strip() == str(2 * len(payload))


def test_a_registry_named_insecure_in_registries_conf_needs_no_flag(oci: Oci, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "etc"
    config.mkdir()
    store = Oci(oci.registry, oci.layout, tmp_path / "data")
    refused = store("--local-config", str(config), "fetch", store.ref("busybox"), insecure="image")
    assert refused.returncode == 254 and "does not speak TLS" in refused.stderr, refused.stderr
    assert "registries.conf" in refused.stderr
    (config / "registries.conf").write_text(f"# a test registry\ninsecure = {oci.registry.host}\n")
    done = store("--local-config", str(config), "fetch", store.ref("busybox"), insecure="image")
    assert done.returncode == 0, done.stderr


def test_the_image_verbs_see_the_merged_layers(oci: Oci, tmp_path: Path, actool: Path) -> None:  # noqa: F811
    done = oci("fetch", oci.ref("layered"))
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.strip()
    extracted = tmp_path / "extracted"
    assert oci("image", "extract", image_id, str(extracted)).returncode == 0
    assert sorted(os.listdir(extracted / "rootfs/data")) == ["keep", "new"]
    assert sorted(os.listdir(extracted / "rootfs/opq")) == ["new"]
    assert (extracted / "rootfs/data/keep").read_text() == "keep2\n"
    assert json.loads((extracted / "manifest").read_text())["app"]["user"] == "web"
    verified = oci("image", "verify", image_id)
    assert verified.returncode == 0 and "matches its ID" in verified.stdout, (
        verified.stdout + verified.stderr
    )
    aci = tmp_path / "layered.aci"
    exported = oci("image", "export", image_id, str(aci))
    assert exported.returncode == 0, exported.stderr
    validated = subprocess.run([str(actool), "validate", str(aci)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr  # the spec authors' oracle
    again = oci("fetch", str(aci))  # the same files, as an ACI
    assert again.returncode == 0 and again.stdout.strip() != image_id, again.stderr
    ran = oci("run", again.stdout.strip(), "--exec=/bin/sh", "--", "-c", "ls /data; ls /opq; cat /data/keep")
    assert [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()] == ["keep", "new", "new", "keep2"]
