"""Fetching by name over real HTTPS: discovery, trust, signatures, cache, resume, auth, insecure options."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness.servers import gpgv_accepts
from tests.net.conftest import World, trust_good

pytestmark = pytest.mark.net


def ids_in_store(home: Path) -> set[str]:
    db = home / "data/images/index.db"
    if not db.exists():
        return set()
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM images")}


def test_trust_by_discovery_then_fetch_by_name(world: World, tmp_path: Path) -> None:
    trust = world.nspod("trust", "--prefix", "example.com", home=tmp_path, stdin="maybe\nyes\n")
    assert trust.returncode == 0, trust.stderr
    fingerprint = world.keys["good"]
    assert " ".join(fingerprint[i : i + 4].upper() for i in range(0, 40, 4)) in trust.stderr
    assert "Please answer yes or no." in trust.stderr
    assert (tmp_path / "etc/trustedkeys/prefix.d/example.com" / fingerprint).is_file()

    before = len(world.nginx.log())
    fetched = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout.strip() == world.images["example.com/busybox"]
    assert "signature verified:\n  nspod good signer <good@example.com>" in fetched.stderr
    requests = [(e["uri"], e["status"]) for e in world.nginx.log()[before:]]
    assert ("/busybox", "404") in requests  # discovery walked up from example.com/busybox …
    assert ("/index.html", "200") in requests or ("/", "200") in requests  # … to example.com
    aci_uri = world.url("example.com/busybox").removeprefix("https://example.com")
    assert (aci_uri + ".asc", "200") in requests and (aci_uri, "200") in requests

    # the second fetch asks with the ETag; nginx answers 304 and sends no body
    before = len(world.nginx.log())
    again = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == world.images["example.com/busybox"]
    aci_requests = [e for e in world.nginx.log()[before:] if e["uri"] == aci_uri]
    assert [(e["status"], e["bytes"]) for e in aci_requests] == [("304", "0")]
    assert aci_requests[0]["if_none_match"]
    listed = world.nspod("image", "list", "--no-legend", "--fields", "name,latest", home=tmp_path)
    assert listed.stdout.split() == ["example.com/busybox:1.0", "false"]  # a version was asked for


def test_max_age_means_no_request_at_all(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    url = "https://example.com/cached/busybox.aci"
    assert world.nspod("fetch", url, home=tmp_path).returncode == 0
    before = len(world.nginx.log())
    assert world.nspod("fetch", url, home=tmp_path).returncode == 0
    assert [e for e in world.nginx.log()[before:] if e["uri"] == "/cached/busybox.aci"] == []


def test_interrupted_download_resumes(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    url = "https://example.com/slow/big.aci"
    size = (world.nginx.www / "slow/big.aci").stat().st_size
    argv = world.argv("fetch", url, home=tmp_path)
    before = len(world.nginx.log())
    first = subprocess.Popen(argv, env=world.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    downloads = tmp_path / "data/images/downloads"
    deadline = time.monotonic() + 60
    while not any(p.suffix == ".part" and p.stat().st_size > 3 << 20 for p in downloads.glob("*.part")):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # nsenter exec'd python: this is nspod itself
    first.wait()
    partial = sum(p.stat().st_size for p in downloads.glob("*.part"))
    assert 0 < partial < size
    second = world.nspod("fetch", url, home=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == world.images["example.com/big"]
    transfers = [e for e in world.nginx.log()[before:] if e["uri"] == "/slow/big.aci"]
    assert transfers[-1]["status"] == "206" and transfers[-1]["range"] == f"bytes={partial}-"
    assert int(transfers[-1]["bytes"]) == size - partial
    assert list(downloads.glob("*.part")) == []


# -- signatures: refused by default, accepted only when the user says so, and gpgv agrees -------------


def keyring_for(world: World, home: Path, name: str) -> Path:
    """The keys nspod trusts for ``name``, as a binary keyring for gpgv."""
    from stage0.images.trust.keystore import Keystore

    keyring = home / f"{name.replace('/', '_')}.gpg"
    data = b""
    for key in Keystore(str(home / "usr-lib"), str(home / "etc")).keys_for(name):
        data += world.gpg.gpg("--dearmor", stdin=Path(key.path).read_bytes())
    keyring.write_bytes(data)
    return keyring


CASES = {
    "unsigned": "no signature for the image",
    "wrongkey": "which is not a trusted key for this image",
    "tampered": "bad signature",
    "revoked": "signed by revoked key",
    "masked": "which is not a trusted key for this image",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_signatures_refused_unless_insecure(world: World, tmp_path: Path, case: str) -> None:
    trust_good(world, tmp_path)
    if case == "revoked":  # trusted before it was revoked; the admin then put the revoked key in place
        trusted = tmp_path / "etc/trustedkeys/prefix.d/example.com/revoked" / world.keys["revoked"]
        trusted.parent.mkdir(parents=True)
        trusted.write_bytes(world.gpg.export(world.keys["revoked"]))
        key = tmp_path / "revoked.asc"
        key.write_bytes(world.gpg.export(world.keys["revoked"]))
        again = world.nspod(
            "trust", "--prefix", "example.com/revoked", "--skip-fingerprint-review", str(key), home=tmp_path
        )
        assert again.returncode == 254 and "is revoked" in again.stderr  # and it cannot be trusted anew
    if case == "masked":  # the vendor trusts it, the admin masked it with an empty file
        system_key = tmp_path / "usr-lib/trustedkeys/prefix.d/example.com/masked" / world.keys["masked"]
        system_key.parent.mkdir(parents=True)
        system_key.write_bytes(world.gpg.export(world.keys["masked"]))
        mask = tmp_path / "etc/trustedkeys/prefix.d/example.com/masked" / world.keys["masked"]
        mask.parent.mkdir(parents=True)
        mask.write_bytes(b"")
    name = f"example.com/{case}"
    refused = world.nspod("fetch", f"{name}:1.0", home=tmp_path)
    assert refused.returncode == 254, refused.stderr
    assert CASES[case] in refused.stderr and "hint:" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 2 + refused.stderr.count("signature verified")
    assert world.images[name] not in ids_in_store(tmp_path)
    if case != "unsigned":
        aci = world.path(name)
        assert gpgv_accepts(keyring_for(world, tmp_path, name), Path(str(aci) + ".asc"), aci) is False
    accepted = world.nspod("--insecure-options=image", "fetch", f"{name}:1.0", home=tmp_path)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == world.images[name]


def test_gpgv_agrees_on_the_good_signature(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    aci = world.path("example.com/busybox")
    assert gpgv_accepts(keyring_for(world, tmp_path, "example.com/busybox"), Path(str(aci) + ".asc"), aci)
    assert world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path).returncode == 0


def test_no_trusted_key(world: World, tmp_path: Path) -> None:
    refused = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path)
    assert refused.returncode == 254
    assert "no key is trusted for example.com/busybox" in refused.stderr
    assert "--trust-keys-from-https" in refused.stderr
    auto = world.nspod("--trust-keys-from-https", "fetch", "example.com/busybox:1.0", home=tmp_path)
    assert auto.returncode == 0, auto.stderr
    assert "Trusting key" in auto.stderr
    assert (tmp_path / "etc/trustedkeys/prefix.d/example.com" / world.keys["good"]).is_file()


# -- insecure options -----------------------------------------------------------------------------------


def test_plain_http_needs_insecure_http(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    url = world.url("example.com/busybox").replace("https://", "http://")
    refused = world.nspod("fetch", url, home=tmp_path)
    assert refused.returncode == 254 and "refusing plain HTTP" in refused.stderr
    assert world.nspod("--insecure-options=http", "fetch", url, home=tmp_path).returncode == 0


def test_untrusted_tls_needs_insecure_tls(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    url = world.url("example.com/busybox")
    system_ca = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    refused = world.nspod("fetch", url, home=tmp_path, env=system_ca)
    assert refused.returncode == 254 and "TLS verification of example.com failed" in refused.stderr
    assert world.nspod("--insecure-options=tls", "fetch", url, home=tmp_path, env=system_ca).returncode == 0


def test_key_over_http_needs_insecure_pubkey(world: World, tmp_path: Path) -> None:
    url = "http://example.com/pubkeys.gpg"
    args = ("trust", "--prefix", "example.com", "--skip-fingerprint-review", url)
    refused = world.nspod(*args, home=tmp_path)
    assert refused.returncode == 254 and "plain HTTP" in refused.stderr
    allowed = world.nspod("--insecure-options=pubkey,http", *args, home=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


# -- credentials from auth.d ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("area", "config"),
    [
        ("basic", {"type": "basic", "credentials": {"user": "alice", "password": "wonderland"}}),
        ("bearer", {"type": "bearer", "credentials": {"token": "sesame"}}),
    ],
)
def test_auth(world: World, tmp_path: Path, area: str, config: dict[str, object]) -> None:
    import json

    trust_good(world, tmp_path)
    url = f"https://example.com/{area}/busybox.aci"
    refused = world.nspod("fetch", url, home=tmp_path)
    assert refused.returncode == 254 and "401" in refused.stderr
    auth = tmp_path / "etc/auth.d/example.json"
    auth.parent.mkdir(parents=True)
    auth.write_text(
        json.dumps({"nspodKind": "auth", "nspodVersion": "v1", "domains": ["example.com"], **config})
    )
    allowed = world.nspod("fetch", url, home=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


# -- dependencies ---------------------------------------------------------------------------------------


def test_missing_dependency_is_discovered(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    fetched = world.nspod("fetch", "example.com/app:1.0", home=tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert ids_in_store(tmp_path) == {world.images["example.com/app"], world.images["example.com/base"]}
    out = tmp_path / "rendered"
    rendered = world.nspod("image", "render", "example.com/app", str(out), home=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert (out / "rootfs/app/run").read_text() == "run\n"
    assert (out / "rootfs/etc/base-release").read_text() == "base 1.0\n"
    assert (out / "manifest").is_file()


# -- local files, all-fetch, progress ---------------------------------------------------------------------


def test_local_file_with_signature(world: World, tmp_path: Path) -> None:
    import shutil

    trust_good(world, tmp_path)
    aci = tmp_path / "busybox.aci"
    shutil.copy(world.path("example.com/busybox"), aci)
    detached = tmp_path / "elsewhere.sig"
    shutil.copy(str(world.path("example.com/busybox")) + ".asc", detached)
    unsigned = world.nspod("fetch", str(aci), home=tmp_path)
    assert unsigned.returncode == 254 and "is not signed" in unsigned.stderr
    with_flag = world.nspod("fetch", "--signature", str(detached), str(aci), home=tmp_path)
    assert with_flag.returncode == 0, with_flag.stderr
    shutil.copy(detached, str(aci) + ".asc")  # the sibling is found by itself
    sibling = world.nspod("fetch", f"file://{aci}", home=tmp_path)
    assert sibling.returncode == 0 and "signature verified" in sibling.stderr


def test_all_fetch_allows_unsigned_over_http(world: World, tmp_path: Path) -> None:
    url = world.url("example.com/unsigned").replace("https://", "http://")
    assert world.nspod("fetch", url, home=tmp_path).returncode == 254
    allowed = world.nspod("--insecure-options=all-fetch", "fetch", url, home=tmp_path)
    assert allowed.returncode == 0 and allowed.stdout.strip() == world.images["example.com/unsigned"]


def test_progress_bar_only_on_a_terminal(world: World, tmp_path: Path) -> None:
    import shlex

    trust_good(world, tmp_path)
    url = world.url("example.com/busybox")
    argv = world.argv("fetch", url, home=tmp_path, sandboxed=False)
    env = world.env({"TERM": "dumb"})
    # script(1) gives nspod a pseudo-terminal, as a user's shell would
    on_tty = world.sandbox.run("script", "-qec", shlex.join(argv), "/dev/null", env=env)
    assert on_tty.returncode == 0, on_tty.stdout
    assert "busybox-1.0-linux" in on_tty.stdout and "[####" in on_tty.stdout
    quiet = world.nspod("fetch", "--pull-policy=update", url.replace("busybox", "base"), home=tmp_path)
    assert quiet.returncode == 0 and "[" not in quiet.stderr


# -- what failed, said plainly; the store when the remote cannot be had (issue #9, defect 7) ----------


def test_failures_say_what_failed(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    untrusted_ca = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}  # not the test CA
    tls = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path, env=untrusted_ca)
    assert tls.returncode == 254 and "TLS verification of example.com failed" in tls.stderr, tls.stderr
    assert "found no an image" not in tls.stderr and "--insecure-options=tls" in tls.stderr
    # discovery walks up to example.com, whose template names an image that is not there
    missing = world.nspod("fetch", "example.com/nothing/here:1.0", home=tmp_path)
    aci = world.url("example.com/nothing/here")
    assert missing.returncode == 254 and f"{aci}.asc (HTTP 404)" in missing.stderr, missing.stderr
    unsigned = world.nspod(
        "--insecure-options=image", "fetch", "example.com/nothing/here:1.0", home=tmp_path
    )
    assert unsigned.returncode == 254 and "404" in unsigned.stderr and aci in unsigned.stderr, (
        unsigned.stderr
    )
    refused = world.nspod("fetch", "https://localhost:1/app.aci", home=tmp_path)
    assert refused.returncode == 254 and "connection refused by localhost:1" in refused.stderr, (
        refused.stderr
    )
    assert len(refused.stderr.strip().splitlines()) == 2  # one line, one hint


def test_update_runs_the_stored_image_when_the_remote_cannot_be_had(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    first = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path)
    assert first.returncode == 0, first.stderr
    offline = world.nspod(
        "fetch", "--pull-policy=update", "example.com/busybox:1.0", home=tmp_path,
        env={"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"},
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.strip() == world.images["example.com/busybox"]
    assert "warning:" in offline.stderr and "from the store" in offline.stderr


def test_an_untrusted_name_is_refused_before_the_download(world: World, tmp_path: Path) -> None:
    before = len(world.nginx.log())
    refused = world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path)
    assert refused.returncode == 254 and "no key is trusted for example.com/busybox" in refused.stderr
    fetched = [e["uri"] for e in world.nginx.log()[before:] if e["uri"].endswith((".aci", ".asc"))]
    assert fetched == [], fetched  # discovery only: neither the image nor its signature


def test_the_trust_prompt_takes_y_and_n(world: World, tmp_path: Path) -> None:
    no = world.nspod("trust", "--prefix", "example.com", home=tmp_path, stdin="n\n")
    assert not (tmp_path / "etc/trustedkeys/prefix.d/example.com" / world.keys["good"]).exists(), no.stderr
    yes = world.nspod("trust", "--prefix", "example.com", home=tmp_path, stdin="Y\n")
    assert yes.returncode == 0, yes.stderr
    assert (tmp_path / "etc/trustedkeys/prefix.d/example.com" / world.keys["good"]).is_file()
