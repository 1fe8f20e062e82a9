"""OCI images as data (issue #13): references, manifests and indexes, configs as appc manifests,
layers with whiteouts, and the merged view of a layer stack."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
import zlib
from pathlib import Path

import pytest

from stage0.errors import UsageError
from stage0.images.aci.tarstream import Limits, TarError
from stage0.images.oci.convert import image_manifest, split_user
from stage0.images.oci.layer import extract_layer
from stage0.images.oci.manifest import (
    DOCKER_LIST,
    OCI_MANIFEST,
    Index,
    Manifest,
    ManifestError,
    choose,
    parse_config,
    parse_document,
)
from stage0.images.oci.reference import Transport, parse_oci_ref
from stage0.images.tree import LayeredTree
from stage0.schema.boundary import parse_image_manifest

D = "sha256:" + "a" * 64


def test_docker_references_as_docker_reads_them() -> None:
    short = parse_oci_ref("docker://busybox")
    assert (short.registry, short.repository, short.tag) == ("docker.io", "library/busybox", "latest")
    assert parse_oci_ref("docker://user/app:1.2").repository == "user/app"
    local = parse_oci_ref(f"docker://127.0.0.1:5000/a/b@{D}")
    assert (local.registry, local.repository, local.tag, local.digest) == ("127.0.0.1:5000", "a/b", "", D)
    assert parse_oci_ref("docker://localhost/x:y").registry == "localhost"
    assert (
        parse_oci_ref("docker://index.docker.io/nginx").canonical()
        == "docker://docker.io/library/nginx:latest"
    )
    for bad in (
        "docker://",
        "docker://UPPER",
        "docker://a:b:c",
        "docker://a@sha256:12",
        "docker:x",
        "tar:x",
    ):
        with pytest.raises(UsageError):
            parse_oci_ref(bad)


def test_layout_and_archive_references() -> None:
    assert parse_oci_ref("oci:/srv/layout:v1").path == "/srv/layout"
    assert parse_oci_ref("oci:/srv/layout").ref == ""
    archive = parse_oci_ref("docker-archive:/tmp/a.tar:repo/x:tag")
    assert (archive.transport, archive.path, archive.ref) == (
        Transport.DOCKER_ARCHIVE,
        "/tmp/a.tar",
        "repo/x:tag",
    )


def _manifest(**extra: object) -> bytes:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 3}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2}
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer], **extra}
    ).encode()


def test_manifests_and_indexes_by_their_own_media_type() -> None:
    parsed = parse_document(_manifest())
    assert isinstance(parsed, Manifest) and parsed.layers[0].digest == D
    entry = {"mediaType": OCI_MANIFEST, "digest": D, "size": 1}
    index = parse_document(json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {**entry, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {**entry, "digest": "sha256:" + "b" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode())  # fmt: skip
    assert isinstance(index, Index)
    assert choose(index, "linux", "amd64").digest.endswith("b" * 64)
    assert choose(index, "linux", "arm64", "v8").digest == D
    with pytest.raises(ManifestError, match="offered: linux/arm64/v8, linux/amd64"):
        choose(index, "linux", "s390x")
    with pytest.raises(ManifestError, match="schema 1"):
        parse_document(b'{"schemaVersion": 1}')
    with pytest.raises(ManifestError, match="unknown media type"):
        parse_document(_manifest().replace(b"tar+gzip", b"tar+lz4"))


def test_a_config_becomes_an_appc_manifest() -> None:
    config = parse_config(json.dumps({
        "os": "linux", "architecture": "arm64", "rootfs": {"type": "layers", "diff_ids": [D]},
        "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "Env": ["PATH=/bin", "A=b=c"],
                   "User": "web", "WorkingDir": "/srv", "ExposedPorts": {"53/udp": {}, "80/tcp": {}},
                   "Volumes": {"/data": {}}, "Labels": {"org.example.x": "1", "Bad Key": "2"},
                   "StopSignal": "SIGQUIT"},
    }).encode())  # fmt: skip
    data = image_manifest(
        config, name="127.0.0.1:5000/App", version="1.0", digest=D, primary_group=lambda u: "1001"
    )
    manifest = parse_image_manifest(json.dumps(data).encode(), "converted")
    assert str(manifest.name) == "127.0.0.1-5000/app"
    assert data["app"]["exec"] == ["/bin/sh", "-c", "true"]
    assert (data["app"]["user"], data["app"]["group"]) == ("web", "1001")
    assert {"name": "A", "value": "b=c"} in data["app"]["environment"]
    assert [p["name"] for p in data["app"]["ports"]] == ["53-udp", "80-tcp"]
    assert data["app"]["mountPoints"] == [{"name": "volume-data", "path": "/data", "readOnly": False}]
    names = [a["name"] for a in data["annotations"]]
    assert "org.example.x" in names and "Bad Key" not in names and "nspod.io/stop-signal" in names
    assert {"name": "arch", "value": "aarch64"} in data["labels"]
    assert split_user("", lambda u: None) == ("0", "0")
    assert split_user("1000", lambda u: None) == ("1000", "0")
    assert split_user("a:b", lambda u: "9") == ("a", "b")


def _layer(entries: list[tuple[str, bytes | None]]) -> bytes:
    """An uncompressed layer: (name, data) files, or (name, None) directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _extract(tmp: Path, name: str, tar: bytes) -> Path:
    import hashlib

    root = tmp / name
    root.mkdir()
    digest = "sha256:" + hashlib.sha256(tar).hexdigest()
    extract_layer(
        io.BytesIO(tar), compression="none", root=str(root), digest=digest, diff_id=digest, limits=Limits()
    )
    return root


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes: root makes them")
def test_layers_stack_with_whiteouts_and_opaque_directories(tmp_path: Path) -> None:
    base = _extract(tmp_path, "base", _layer([("etc/", None), ("etc/passwd", b"root:x:0:0::/:/bin/sh\n"),
                                               ("d/a", b"a"), ("d/b", b"b"), ("o/old", b"o")]))  # fmt: skip
    top = _extract(tmp_path, "top", _layer([("d/.wh.a", b""), ("o/.wh..wh..opq", b""), ("o/new", b"n")]))
    assert stat.S_ISCHR(os.lstat(top / "d/a").st_mode) and os.lstat(top / "d/a").st_rdev == 0
    assert os.getxattr(top / "o", "trusted.overlay.opaque") == b"y"
    tree = LayeredTree((str(top), str(base)))
    assert tree.resolve("/d/a") is None and tree.resolve("/d/b") == str(base / "d/b")
    assert tree.resolve("/o/old") is None and tree.resolve("/o/new") == str(top / "o/new")
    assert tree.account("passwd", "root") == 0 and tree.lower == (str(base),)


@pytest.mark.parametrize(
    "entries",
    [
        [("../x", b"")],
        [("/abs", b"")],
        [("d/.wh...", b"")],
        [("d/.wh.", b"")],
        [("link", None), ("link/x", b"")],
    ],
    ids=["dotdot", "absolute", "whiteout-dotdot", "whiteout-empty", "through-a-file"],
)
def test_hostile_layers_are_refused(tmp_path: Path, entries: list[tuple[str, bytes | None]]) -> None:
    if entries[0][0] == "link":  # a file where a directory should be, then written through
        entries = [("link", b"file"), ("link/x", b"")]
    with pytest.raises(TarError):
        _extract(tmp_path, "bad", _layer(entries))


def test_a_layer_that_is_not_what_its_digest_says_is_refused(tmp_path: Path) -> None:
    tar = _layer([("f", b"x")])
    (tmp_path / "r").mkdir()
    with pytest.raises(TarError, match="does not match its digest"):
        extract_layer(
            io.BytesIO(tar),
            compression="none",
            root=str(tmp_path / "r"),
            digest=D,
            diff_id=D,
            limits=Limits(),
        )


def test_stop_signals_as_systemd_takes_them() -> None:
    from stage0.images.oci.plan import stop_signal

    assert [stop_signal(v) for v in ("SIGQUIT", "quit", "9", "", None, "SIGNOPE", "99")] == [
        "SIGQUIT", "SIGQUIT", "9", "", "", "", ""
    ]  # fmt: skip


def test_a_stack_past_what_one_overlay_mount_takes_is_refused() -> None:
    from stage1.abi import AppSpec, Error
    from stage1.nspawn.service import check_stack

    layer = "/var/lib/nspod/images/oci/sha256-" + "a" * 64
    upper = "/var/lib/nspod/pods/run/" + "u" * 36 + "/overlay/app/upper"
    check_stack(AppSpec(name="app", rootfs=layer, lower=(layer,) * 30, exec=("/bin/sh",)), upper)
    with pytest.raises(Error, match="41 layers"):
        check_stack(AppSpec(name="app", rootfs=layer, lower=(layer,) * 40, exec=("/bin/sh",)), upper)


def test_short_names_go_to_the_configured_default_registry(tmp_path: Path) -> None:
    from stage0.images.oci.reference import default_registry

    system, local = tmp_path / "lib", tmp_path / "etc"
    system.mkdir()
    local.mkdir()
    assert default_registry((str(system), str(local))) == "docker.io"
    (system / "registries.conf").write_text("# vendor\ndefault-registry = mirror.example.com\n")
    assert default_registry((str(system), str(local))) == "mirror.example.com"
    (local / "registries.conf").write_text('default-registry = "127.0.0.1:5000"\n')
    registry = default_registry((str(system), str(local)))
    assert parse_oci_ref("docker://app:1", registry).canonical() == "docker://127.0.0.1:5000/app:1"
    (local / "registries.conf").write_text("default-registry = not a host\n")
    with pytest.raises(UsageError):
        default_registry((str(system), str(local)))


@pytest.mark.parametrize("read", [7, 4096, 1 << 20])
def test_the_gzip_reader_reads_members_padding_and_nothing_else(read: int) -> None:
    """zlib leaves what follows a member in both unused_data and the unconsumed tail when a read
    stops at max_length: the reader must go on from unused_data (it once spun on the tail)."""
    from stage0.images.aci.compression import GzipReader

    def drain(data: bytes) -> bytes:
        reader, out = GzipReader(io.BytesIO(data)), []
        while chunk := reader.read(read):
            out.append(chunk)
        return b"".join(out)

    body = os.urandom(300_000)
    assert drain(gzip.compress(body) + b"\0" * 512) == body
    assert drain(gzip.compress(body) + gzip.compress(b"more")) == body + b"more"
    with pytest.raises(zlib.error):
        drain(gzip.compress(body) + b"garbage")
    with pytest.raises(EOFError):
        drain(gzip.compress(body)[:-20])


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("127.0.0.1:5055/test/bb:1", "oci", "docker://127.0.0.1:5055/test/bb:1"),
        ("localhost:5000/bb", "oci", "docker://localhost:5000/bb"),
        (
            "docker.io/library/bb@sha256:" + "a" * 64,
            "oci",
            "docker://docker.io/library/bb@sha256:" + "a" * 64,
        ),
        ("docker://127.0.0.1:5055/test/bb:1", "oci", "docker://127.0.0.1:5055/test/bb:1"),
        ("127.0.0.1-5055/test/bb:1", "name", "127.0.0.1-5055/test/bb"),
        ("example.com/app:1.0,os=linux", "name", "example.com/app"),
        ("example.com/app:5055/x", "name", "example.com/app"),  # an appc version may hold a /
    ],
)
def test_what_image_list_shows_is_a_reference(text: str, kind: str, target: str) -> None:
    """An OCI image's name as `image list` shows it (REGISTRY:PORT/REPO:TAG, or …@DIGEST) is its
    docker:// reference: never appc discovery of the host (issue #23 item 14)."""
    from stage0.images.fetch.refs import parse_ref

    ref = parse_ref(text, is_file=lambda _: False)
    assert (ref.kind.value, ref.target) == (kind, target)
