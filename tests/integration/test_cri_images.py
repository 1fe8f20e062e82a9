"""The CRI image service (issue #24, item 6) over gRPC on a unix socket, against a real registry
serving critest's images (tests/harness/cri_images.py) through registries.conf mirrors: IDs, tags
and digests as critest compares them, users from the config, removal, ImageFsInfo, auth configs,
and the CRI pull trust policy (verified where a key is trusted, refused unsigned there, accepted
unsigned elsewhere; every pull signed with ``[cri] require-signatures``). No pod runs: no systemd."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_nspod
from tests.harness import cri_images
from tests.harness.registry import BASIC, Layout, Registry, cosign_sign

grpc = pytest.importorskip("grpc")
api = pytest.importorskip("stage0.cri.proto.api_pb2")
api_grpc = pytest.importorskip("stage0.cri.proto.api_pb2_grpc")

CRI = "gcr.io/k8s-staging-cri-tools"


@dataclass
class Service:
    registry: Registry
    config: Path
    data: Path
    stub: Any
    service: Any

    def pull(self, name: str, auth: Any = None) -> str:
        request = api.PullImageRequest(image=api.ImageSpec(image=name))
        if auth is not None:
            request.auth.CopyFrom(auth)
        return str(self.stub.PullImage(request).image_ref)

    def status(self, name: str, verbose: bool = False) -> Any:
        return self.stub.ImageStatus(
            api.ImageStatusRequest(image=api.ImageSpec(image=name), verbose=verbose)
        )

    def remove(self, name: str) -> None:
        self.stub.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=name)))

    def code(self, call: Any) -> tuple[Any, str]:
        with pytest.raises(grpc.RpcError) as failed:
            call()
        return failed.value.code(), failed.value.details()


@contextmanager
def serve(tmp: Path, registry: Registry, conf: str = "") -> Iterator[Service]:
    from stage0.cri.images import add_to_server
    from stage0.options import GlobalOptions

    config, data = tmp / "etc", tmp / "data"
    config.mkdir(parents=True)
    host = registry.host
    (config / "registries.conf").write_text(
        f"insecure = {host}\nmirror = gcr.io={host}\nmirror = registry.k8s.io={host}\n"
    )
    if conf:
        (config / "nspod.conf").write_text(conf)
    options = GlobalOptions(dir=str(data), local_config=str(config), system_config=str(tmp / "none"))
    server = grpc.server(futures.ThreadPoolExecutor(4))
    service = add_to_server(server, options)
    socket = tmp / "cri.sock"
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    channel = grpc.insecure_channel(f"unix://{socket}")
    try:
        yield Service(registry, config, data, api_grpc.ImageServiceStub(channel), service)
    finally:
        channel.close()
        server.stop(None)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """critest's images (built once per machine, cached), served on 127.0.0.1 for the session."""
    storage = cri_images.build()
    directory = tmp_path_factory.mktemp("cri-registry")
    shutil.copytree(storage, directory / "storage")
    registry = Registry.start(directory)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def cri(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(tmp_path_factory.mktemp("cri-images"), registry) as service:
        yield service


def test_an_image_is_the_same_by_id_tag_and_digest_and_goes_by_id(cri: Service) -> None:
    name = f"{CRI}/test-image-tag:all"
    image_id = cri.pull(name)
    assert image_id.startswith("sha256:") and len(image_id) == 71
    status = cri.status(name).image
    assert status.id == image_id and list(status.repo_tags) == [name] and status.size > 0
    [digest] = status.repo_digests
    assert digest.startswith(f"{CRI}/test-image-tag@sha256:")
    for other in (image_id, image_id.removeprefix("sha256:"), digest):
        assert cri.status(other).image == status, other
    verbose = cri.status(name, verbose=True)
    assert '"imageSpec"' in verbose.info["info"] and '"rootfs"' in verbose.info["info"]
    assert [i.id for i in cri.stub.ListImages(api.ListImagesRequest()).images] == [image_id]
    cri.remove(image_id)
    assert not cri.status(name).HasField("image") and not cri.status(digest).HasField("image")
    cri.remove(image_id)  # what is gone is removed again without error, as the CRI asks


def test_tags_of_one_image_and_images_of_one_repository(cri: Service) -> None:
    ids = {cri.pull(f"{CRI}/test-image-tags:{tag}") for tag in "123"}
    assert len(ids) == 1
    others = [cri.pull(f"{CRI}/test-image-{n}") for n in "123"]  # short of a tag: latest
    assert len(set(others)) == 3 and not ids & set(others)
    listed = {i.id: i for i in cri.stub.ListImages(api.ListImagesRequest()).images}
    assert sorted(listed[ids.pop()].repo_tags) == [f"{CRI}/test-image-tags:{t}" for t in "123"]
    assert [list(listed[i].repo_tags) for i in others] == [[f"{CRI}/test-image-{n}:latest"] for n in "123"]
    only = api.ListImagesRequest(filter=api.ImageFilter(image=api.ImageSpec(image=f"{CRI}/test-image-2")))
    assert [i.id for i in cri.stub.ListImages(only).images] == [others[1]]
    for image_id in {*listed}:
        cri.remove(image_id)
    assert not cri.stub.ListImages(api.ListImagesRequest()).images


def test_uid_or_username_from_the_config(cri: Service) -> None:
    for image, uid, username in (
        ("test-image-user-uid", 1002, ""),
        ("test-image-user-username", None, "www-data"),
        ("test-image-user-uid-group", 1003, ""),
        ("test-image-user-username-group", None, "www-data"),
        ("test-image-predefined-group", 1000, ""),
    ):
        cri.pull(f"{CRI}/{image}")
        status = cri.status(f"{CRI}/{image}").image
        assert (status.uid.value if status.HasField("uid") else None, status.username) == (uid, username)
        cri.remove(status.id)


def test_image_fs_info_measures_the_store(cri: Service) -> None:
    cri.pull("registry.k8s.io/e2e-test-images/busybox:1.29-2")
    [usage] = cri.stub.ImageFsInfo(api.ImageFsInfoRequest()).image_filesystems
    assert usage.fs_id.mountpoint == str(cri.data / "images")
    assert usage.used_bytes.value > 1 << 20 and usage.inodes_used.value > 10 and usage.timestamp > 0


def test_bad_requests_have_their_codes(cri: Service) -> None:
    # not through a mirror: a mirror that fails sends the pull on to the registry itself
    code, text = cri.code(lambda: cri.pull(f"{cri.registry.host}/no-such-image:1"))
    assert code == grpc.StatusCode.NOT_FOUND and "no-such-image" in text, text
    code, text = cri.code(lambda: cri.pull("Bad Name"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bad image" in text, text
    assert not cri.status("sha256:" + "0" * 64).HasField("image")


def test_auth_config_credentials_reach_the_registry(tmp_path: Path, registry: Registry) -> None:
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "kube", "let-me-in"], check=True, capture_output=True)
    shutil.copytree(registry.dir / "storage", tmp_path / "private/storage")
    private = Registry.start(tmp_path / "private", auth=BASIC.format(path=htpasswd))
    try:
        with serve(tmp_path / "svc", private) as service:
            name = f"{private.host}/e2e-test-images/busybox:1.29-2"
            code, text = service.code(lambda: service.pull(name))
            assert code == grpc.StatusCode.PERMISSION_DENIED and "user name" in text, text
            wrong = api.AuthConfig(username="kube", password="wrong")
            assert service.code(lambda: service.pull(name, wrong))[0] == grpc.StatusCode.PERMISSION_DENIED
            assert service.pull(name, api.AuthConfig(username="kube", password="let-me-in"))
            service.remove(name)
            encoded = base64.b64encode(b"kube:let-me-in").decode()
            assert service.pull(name, api.AuthConfig(auth=encoded))
            assert not list((service.config).glob("auth*")), "credentials are never written"
    finally:
        private.stop()


def test_the_cri_trust_policy(tmp_path: Path, registry: Registry) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "cosign.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    layout = Layout(tmp_path / "layout")
    layout.busybox("busybox")
    for name in ("signed/app:1", "signed/unsigned:1", "open/app:1"):
        layout.push("busybox", f"{registry.host}/{name}")
    cosign_sign(layout, registry, "signed/app", "1", key)
    with serve(tmp_path / "svc", registry) as service:
        trusted = run_nspod(
            "--local-config", str(service.config), "trust", "--prefix", f"docker://{registry.host}/signed",
            "--cosign-key", str(public), "--skip-fingerprint-review",
        )  # fmt: skip
        assert trusted.returncode == 0, trusted.stderr
        signed = service.pull(f"{registry.host}/signed/app:1")
        info = service.status(signed, verbose=True).info["info"]
        assert '"signer": "cosign:' in info, info
        code, text = service.code(lambda: service.pull(f"{registry.host}/signed/unsigned:1"))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "is not signed" in text, text
        assert service.pull(f"{registry.host}/open/app:1")  # no key for its prefix: taken unsigned
        service.remove(f"{registry.host}/open/app:1")
        (service.config / "nspod.conf").write_text("[cri]\nrequire-signatures = true\n")
        code, text = service.code(lambda: service.pull(f"{registry.host}/open/app:1"))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "no cosign key is trusted" in text, text
        assert service.pull(f"{registry.host}/signed/app:1") == signed
