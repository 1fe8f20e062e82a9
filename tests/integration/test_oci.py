"""OCI images from a real registry (issue #13): Debian's docker-registry on the test host's
127.0.0.1, images built with umoci and pushed with skopeo. Pulled into the layer store and run as
overlay stacks; what the registry's access log says is what nspod asked for."""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from stage0.images.oci.manifest import OCI_INDEX, OCI_MANIFEST
from tests.conftest import assert_output_schema
from tests.harness.registry import Layout, Registry

pytestmark = pytest.mark.systemd
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Oci:
    registry: Registry
    layout: Layout
    data: Path

    def __call__(self, *args: str, insecure: str = "image,http") -> subprocess.CompletedProcess[str]:
        argv = [
            sys.executable,
            "-m",
            "stage0",
            "--dir",
            str(self.data),
            f"--insecure-options={insecure}",
            *args,
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(argv, capture_output=True, text=True, timeout=180, env=env)

    def ref(self, name: str) -> str:
        return f"docker://{self.registry.host}/{name}"

    def sh(self, name: str, script: str) -> str:
        done = self("run", self.ref(name), "--exec=/bin/sh", "--", "-c", script)
        assert done.returncode == 0, done.stderr
        return "".join(line.split(": ", 1)[-1] + "\n" for line in done.stdout.splitlines())

    def layer_dirs(self) -> set[str]:
        oci = self.data / "images/oci"
        return set(os.listdir(oci)) if oci.exists() else set()


def _opaque_tar() -> Path:
    """A layer that makes /opq opaque and adds /opq/new (GNU-style, padded and terminated)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("opq/.wh..wh..opq", b""), ("opq/new", b"fresh\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    path = Path(f"/tmp/nspod-opq-{os.getpid()}.tar")
    path.write_bytes(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def oci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oci]:
    base = tmp_path_factory.mktemp("oci")
    registry = Registry.start(base / "registry")
    try:
        layout = Layout(base / "layout")
        layout.busybox("busybox")
        layout.config(
            "busybox", "--config.entrypoint", "/bin/sh", "--config.cmd", "-c",
            "--config.cmd", 'echo "hello from oci"; id -u; pwd; echo "$GREETING"',
            "--config.env", "PATH=/bin", "--config.env", "GREETING=hi", "--config.workingdir", "/etc",
            "--config.user", "web", "--config.exposedports", "8080/tcp",
            "--config.label", "org.example.fixture=busybox", "--os", "linux", "--architecture", "amd64",
            "--config.volume", "/srv/data",
        )  # fmt: skip
        layout.push("busybox", f"{registry.host}/busybox:latest")
        layout.layer("busybox", "l2", {"data/keep": "keep1\n", "data/remove-me": "x\n", "opq/old1": "o\n",
                                       "opq/sub/old2": "o\n"})  # fmt: skip
        layout.layer("l2", "l3", {"data/remove-me": None, "data/keep": "keep2\n", "data/new": "new\n"})
        layout.layer("l3", "layered", {})  # a copy to extend
        layout.raw_layer("layered", _opaque_tar())
        layout.push("layered", f"{registry.host}/layered:latest")
        layout.layer("l3", "sibling", {"sibling": "own layer\n"})
        layout.push("sibling", f"{registry.host}/sibling:latest")
        layout.layer("busybox", "tamper", {"tampered": "x\n"})
        layout.push("tamper", f"{registry.host}/tamper:latest")
        _multi_and_zstd(layout, registry)
        yield Oci(registry, layout, base / "data")
    finally:
        registry.stop()


def _multi_and_zstd(layout: Layout, registry: Registry) -> None:
    """An index of two platforms (the arm64 one says so in its config only) and an image whose
    layer is zstd: written by hand, umoci makes neither."""
    manifest = layout.manifest("busybox")
    config = json.loads(layout.blob(manifest["config"]["digest"]))
    arm = json.dumps({**config, "architecture": "arm64", "variant": "v8"}).encode()
    arm_manifest = {
        **manifest,
        "config": {**manifest["config"], "digest": layout.add_blob(arm), "size": len(arm)},
    }
    arm_data = json.dumps(arm_manifest).encode()
    entries = [
        {"mediaType": OCI_MANIFEST, "digest": layout.add_blob(arm_data), "size": len(arm_data),
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": layout.add_blob(json.dumps(manifest).encode()),
         "size": len(json.dumps(manifest).encode()), "platform": {"os": "linux", "architecture": "amd64"}},
    ]  # fmt: skip
    layout.tag_document(
        "multi", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, OCI_INDEX
    )
    layout.push("multi", f"{registry.host}/multi:latest", "--all")
    layer = manifest["layers"][0]
    packed = zstandard.ZstdCompressor().compress(gzip.decompress(layout.blob(layer["digest"])))
    zstd = {**layer, "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
            "digest": layout.add_blob(packed), "size": len(packed)}  # fmt: skip
    layout.tag_document("zstd", {**manifest, "layers": [zstd]}, OCI_MANIFEST)
    layout.push("zstd", f"{registry.host}/zstd:latest")


def blob_gets(registry: Registry, since: int) -> list[str]:
    return [p for m, p, s in registry.requests()[since:] if m == "GET" and "/blobs/" in p]


def test_a_busybox_image_pulls_and_runs_as_its_config_says(oci: Oci) -> None:
    done = oci("fetch", oci.ref("busybox"))
    assert done.returncode == 0, done.stderr
    image_id = done.stdout.strip()
    assert image_id.startswith("sha512-")
    assert oci.sh("busybox", "true") == ""
    ran = oci("run", oci.ref("busybox"))
    assert ran.returncode == 0, ran.stderr
    lines = [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()]
    assert lines == ["hello from oci", "1000", "/etc", "hi"]  # Entrypoint+Cmd, User, WorkingDir, Env
    # arguments replace Cmd and keep Entrypoint, as docker's do
    replaced = oci("run", oci.ref("busybox"), "--", "-c", "echo replaced $GREETING")
    assert replaced.stdout.splitlines()[-1].endswith("replaced hi"), replaced.stdout + replaced.stderr
    manifest = json.loads(oci("image", "cat-manifest", image_id).stdout)
    assert {"name": "8080-tcp", "protocol": "tcp", "port": 8080} in manifest["app"]["ports"]
    assert manifest["app"]["group"] == "1001"  # the user's primary group, from the image's passwd
    assert {"name": "org.example.fixture", "value": "busybox"} in manifest["annotations"]
    # a Volume the pod gives nothing for: an empty volume of its own, the app's user may write it
    assert oci.sh("busybox", "ls -A /srv/data; echo ok > /srv/data/f && cat /srv/data/f") == "ok\n"


def test_whiteouts_and_opaque_directories_hide_what_lower_layers_hold(oci: Oci) -> None:
    out = oci.sh("layered", "ls -a /data /opq; cat /data/keep /opq/new")
    assert "remove-me" not in out and "old1" not in out and "sub" not in out, out
    assert out.split() == ["/data:", ".", "..", "keep", "new", "/opq:", ".", "..", "new", "keep2", "fresh"]


def test_a_second_image_downloads_only_its_own_layer_and_rm_keeps_the_shared_ones(oci: Oci) -> None:
    assert oci("fetch", oci.ref("layered")).returncode == 0
    layered = oci.layer_dirs()
    since = len(oci.registry.requests())
    done = oci("fetch", oci.ref("sibling"))
    assert done.returncode == 0, done.stderr
    sibling_layer = oci.layout.manifest("sibling")["layers"][-1]["digest"]
    config = oci.layout.manifest("sibling")["config"]["digest"]
    assert sorted(blob_gets(oci.registry, since)) == sorted(
        [f"/v2/sibling/blobs/{config}", f"/v2/sibling/blobs/{sibling_layer}"]
    )
    both = oci.layer_dirs()
    assert len(both) == len(layered) + 1
    listed = json.loads(oci("image", "list", "--format=json").stdout)
    assert_output_schema("image-list", listed)
    by_ref = {i["reference"]: i for i in listed}
    sibling, layered_row = (
        by_ref[f"{oci.registry.host}/sibling:latest"],
        by_ref[f"{oci.registry.host}/layered:latest"],
    )
    assert sibling["digest"].startswith("sha256:") and sibling["shared_size"] > 0 and sibling["own_size"] > 0
    assert layered_row["shared_size"] == sibling["shared_size"]  # the three layers both list
    text = oci("image", "list", "--fields=name,digest,shared,own", "--no-legend").stdout
    assert f"{oci.registry.host}/sibling:latest  sha256:" in text, text
    for _ in range(2):  # the earlier tests' pods: marked exited, then removed
        assert oci("gc", "--grace-period=0s").returncode == 0
    removed = oci("image", "rm", oci("fetch", "--pull-policy=never", oci.ref("layered")).stdout.strip())
    assert removed.returncode == 0, removed.stderr
    assert len(oci.layer_dirs()) == len(both) - 1  # only the opaque layer was layered's alone
    assert "own layer" in oci.sh("sibling", "cat /sibling")
    assert oci("image", "gc", "--grace-period=0s").returncode == 0
    index = sqlite3.connect(oci.data / "images/index.db")
    listed_layers = {r[0] for r in index.execute("SELECT diff_id FROM image_layers")}
    stored_layers = {r[0] for r in index.execute("SELECT diff_id FROM layers")}
    index.close()
    assert stored_layers == listed_layers  # no orphan row, and every directory has its row:
    assert oci.layer_dirs() == {d.replace(":", "-") for d in stored_layers}


def test_an_unchanged_tag_costs_one_head_request(oci: Oci) -> None:
    assert oci("fetch", oci.ref("busybox")).returncode == 0
    since = len(oci.registry.requests())
    again = oci("fetch", oci.ref("busybox"))
    assert again.returncode == 0, again.stderr
    assert oci.registry.requests()[since:] == [("HEAD", "/v2/busybox/manifests/latest", 200)]


def test_a_blob_changed_on_the_registry_is_refused_and_nothing_stored(oci: Oci) -> None:
    layer = oci.layout.manifest("tamper")["layers"][-1]["digest"]
    path = oci.registry.blob_path(layer)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = oci.layer_dirs()
    done = oci("fetch", oci.ref("tamper"))
    assert done.returncode == 254 and "digest" in done.stderr, done.stderr
    assert oci.layer_dirs() == before
    assert "tamper" not in oci("image", "list").stdout
    assert os.listdir(oci.data / "images/tmp") == [] and os.listdir(oci.data / "images/downloads") == []


def test_an_image_from_a_registry_needs_a_key_or_insecure_options(oci: Oci) -> None:
    done = oci("fetch", "--pull-policy=update", oci.ref("busybox"), insecure="http")
    assert done.returncode == 254 and "--insecure-options=image" in done.stderr, done.stderr


def test_an_index_resolves_to_this_hosts_platform(oci: Oci) -> None:
    done = oci("fetch", oci.ref("multi"))
    assert done.returncode == 0, done.stderr
    manifest = json.loads(oci("image", "cat-manifest", done.stdout.strip()).stdout)
    assert {"name": "arch", "value": "amd64"} in manifest["labels"]
    assert "hello from oci" in oci("run", oci.ref("multi")).stdout
    arm = oci("--platform=linux/arm64/v8", "fetch", oci.ref("multi"))
    assert arm.returncode == 0 and arm.stdout != done.stdout, arm.stderr
    labels = json.loads(oci("image", "cat-manifest", arm.stdout.strip()).stdout)["labels"]
    assert {"name": "arch", "value": "aarch64"} in labels
    missing = oci("--platform=linux/s390x", "fetch", oci.ref("multi"))
    assert missing.returncode == 254 and "offered: linux/arm64/v8, linux/amd64" in missing.stderr


def test_a_zstd_layer_runs_the_same(oci: Oci) -> None:
    assert oci.sh("zstd", "cat /etc/group") == "root:x:0:\nweb:x:1001:\n"


def test_concurrent_pulls_of_one_image_store_each_layer_once(oci: Oci, tmp_path: Path) -> None:
    other = Oci(oci.registry, oci.layout, tmp_path / "data")
    for _ in range(3):
        with ThreadPoolExecutor(5) as pool:
            runs = list(pool.map(lambda _: other("fetch", other.ref("layered")), range(5)))
        assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
        assert len({r.stdout.strip() for r in runs}) == 1
        assert len(other.layer_dirs()) == len(oci.layout.manifest("layered")["layers"])
        assert os.listdir(other.data / "images/tmp") == []
        assert other("image", "rm", runs[0].stdout.strip()).returncode == 0
        assert other.layer_dirs() == set()


def test_an_oci_layout_and_archives_run_the_same(oci: Oci, tmp_path: Path) -> None:
    from_registry = oci("fetch", oci.ref("layered"))
    assert from_registry.returncode == 0, from_registry.stderr
    policy = str(oci.layout.dir / "policy.json")
    archives = {
        "oci-archive": tmp_path / "layered-oci.tar",
        "docker-archive": tmp_path / "layered-docker.tar",
    }
    for transport, path in archives.items():
        tag = "layered" if transport == "oci-archive" else "example/layered:v1"
        subprocess.run(["skopeo", "--policy", policy, "copy", "-q", f"oci:{oci.layout.path}:layered",
                        f"{transport}:{path}:{tag}"], check=True, capture_output=True)  # fmt: skip
    refs = {
        "oci": f"oci:{oci.layout.path}:layered",
        "oci-archive": f"oci-archive:{archives['oci-archive']}:layered",
        "docker-archive": f"docker-archive:{archives['docker-archive']}:example/layered:v1",
    }
    layers = oci.layer_dirs()
    for transport, ref in refs.items():
        refused = oci("fetch", ref, insecure="none")  # verified by default: nothing to verify it with
        assert refused.returncode == 254 and "--insecure-options=image" in refused.stderr, refused.stderr
        done = oci("fetch", ref)
        assert done.returncode == 0, (transport, done.stderr)
        if transport != "docker-archive":  # the same config: the same image
            assert done.stdout.strip() == from_registry.stdout.strip()
        ran = oci("run", ref, "--exec=/bin/sh", "--", "-c", "ls /data; ls /opq; cat /data/keep")
        assert ran.returncode == 0, ran.stderr
        assert [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()] == [
            "keep",
            "new",
            "new",
            "keep2",
        ]
    assert oci.layer_dirs() == layers  # the same diff IDs: not one layer stored twice


def test_a_local_source_that_names_nothing_says_what_it_has(oci: Oci) -> None:
    done = oci("fetch", f"oci:{oci.layout.path}:nope")
    assert done.returncode == 254 and "no image named nope" in done.stderr and "busybox" in done.stderr, (
        done.stderr
    )
    done = oci("fetch", "oci:/nonexistent")
    assert done.returncode == 254 and "not an OCI image layout" in done.stderr, done.stderr


def test_an_oci_image_in_a_pod_with_its_own_user_namespace(oci: Oci) -> None:
    script = "ls /data; ls /opq; cat /data/keep; id -u; touch /data/mine && echo written"
    done = oci(
        "run", "--private-users", oci.ref("layered"), "--user=0", "--exec=/bin/sh", "--", "-c", script
    )
    assert done.returncode == 0, done.stderr
    out = [line.split(": ", 1)[-1] for line in done.stdout.splitlines()]
    assert out == ["keep", "new", "new", "keep2", "0", "written"], out
