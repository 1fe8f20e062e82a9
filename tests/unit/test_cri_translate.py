"""CRI configs as nspod requests (stage0/cri/translate.py), the CRI's records on disk
(stage0/cri/state.py) and its error table (stage0/cri/status.py): pure, no server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from stage0.cri import translate
from stage0.cri.proto import api_pb2
from stage0.cri.state import ContainerRecord, SandboxRecord, State, lookup_container, new_container_id
from stage0.cri.status import Failure, code_of, message_of
from stage0.errors import DiskFull, Error, UsageError
from stage0.images.oci.registry import AccessDenied
from stage0.pods.dirs import PodNotFound


def sandbox(**fields: Any) -> api_pb2.PodSandboxConfig:
    meta = api_pb2.PodSandboxMetadata(name="web", uid="u1", namespace="default")
    return api_pb2.PodSandboxConfig(metadata=meta, **fields)


def container(**fields: Any) -> api_pb2.ContainerConfig:
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="app"),
        image=api_pb2.ImageSpec(image="busybox:1.36"),
        **fields,
    )


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ([], [], (None, None)),  # the image's Entrypoint and Cmd
        ([], ["-c", "x"], (None, ("-c", "x"))),  # Entrypoint kept, Cmd replaced
        (["/bin/sh"], [], ("/bin/sh", ())),  # Entrypoint replaced, Cmd dropped
        (["/bin/sh", "-e"], ["-c", "x"], ("/bin/sh", ("-e", "-c", "x"))),
    ],
)
def test_kubernetes_command_and_args(command: list[str], args: list[str], expected: object) -> None:
    assert translate.argv(container(command=command, args=args)) == expected


def test_sandbox_request() -> None:
    dns = api_pb2.DNSConfig(servers=["10.0.0.53"], searches=["svc.local"], options=["ndots:5"])
    ports = [api_pb2.PortMapping(container_port=80, host_port=8080), api_pb2.PortMapping(container_port=81)]
    request = translate.sandbox_request(sandbox(hostname="web-0", dns_config=dns, port_mappings=ports))
    assert request.apps == () and request.hostname == "web-0" and request.nets == ()
    assert (request.dns.servers, request.dns.search, request.dns.options) == (
        ("10.0.0.53",),
        ("svc.local",),
        ("ndots:5",),
    )
    assert [(p.port, p.host_port, p.protocol) for p in request.ports] == [
        (80, 8080, "tcp")
    ]  # no host port: none


def test_host_network_sandbox() -> None:
    node = api_pb2.NamespaceOption(network=api_pb2.NamespaceMode.NODE)
    linux = api_pb2.LinuxPodSandboxConfig(
        security_context=api_pb2.LinuxSandboxSecurityContext(namespace_options=node)
    )
    request = translate.sandbox_request(sandbox(hostname="web-0", linux=linux))
    assert request.nets == ("host",) and request.hostname is None and request.ports == ()


@pytest.mark.parametrize("config", [api_pb2.PodSandboxConfig(), sandbox(hostname="bad_name!")])
def test_bad_sandboxes_are_invalid_arguments(config: api_pb2.PodSandboxConfig) -> None:
    with pytest.raises(Failure) as failed:
        translate.sandbox_request(config)
    assert failed.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_container_request() -> None:
    ident = new_container_id()
    mounts = [api_pb2.Mount(container_path="/data", host_path="/srv/data", readonly=True)]
    config = container(envs=[api_pb2.KeyValue(key="A", value="1")], working_dir="/srv", mounts=mounts)
    app, volumes = translate.container_request(config, sandbox(), ident, {})
    assert app.image == "docker://busybox:1.36" and app.name == f"app-{ident[:8]}"
    assert app.environment == (("A", "1"),) and app.working_dir == "/srv"
    assert [(v.kind, v.source, v.read_only) for v in volumes] == [("host", "/srv/data", True)]
    assert app.mounts == ((volumes[0].name, "/data", True),)


def test_bidirectional_mounts_need_a_privileged_container_and_a_shared_host_path() -> None:
    both = api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL
    mounts = [api_pb2.Mount(container_path="/m", host_path="/srv/m", propagation=both)]
    privileged = api_pb2.LinuxContainerConfig(
        security_context=api_pb2.LinuxContainerSecurityContext(privileged=True)
    )
    volumes, _ = translate.host_volumes(container(mounts=mounts, linux=privileged), "c" * 64, lambda p: True)
    assert [v.shared for v in volumes] == [True]
    for config, shared, code in (
        (container(mounts=mounts), True, grpc.StatusCode.INVALID_ARGUMENT),  # kubelet's rule
        (container(mounts=mounts, linux=privileged), False, grpc.StatusCode.FAILED_PRECONDITION),
    ):
        with pytest.raises(Failure) as failed:
            translate.host_volumes(config, "c" * 64, {"/srv/m": shared}.__getitem__)
        assert failed.value.code is code and "/srv/m" in str(failed.value)
    rslave = api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER
    slave = [api_pb2.Mount(container_path="/m", host_path="/srv/m", propagation=rslave)]
    volumes, _ = translate.host_volumes(container(mounts=slave), "c" * 64, lambda p: False)
    assert [v.shared for v in volumes] == [False]


@pytest.mark.parametrize(
    ("image", "argument"),
    [
        ("busybox", "docker://busybox"),
        ("127.0.0.1:5000/a/b:1", "docker://127.0.0.1:5000/a/b:1"),
        ("sha512-0123abcd", "sha512-0123abcd"),
        ("docker://x/y", "docker://x/y"),
    ],
)
def test_image_arguments(image: str, argument: str) -> None:
    assert translate.image_argument(image) == argument


def test_app_names_are_appc_names() -> None:
    assert translate.app_name("My_Container.v2", "abcdef0123456789") == "my-container-v2-abcdef01"
    assert translate.app_name("___", "abcdef0123456789") == "app-abcdef01"
    # cut at 40 on a dash: no "--" before the ID (an appc name has single dashes)
    long = "container-reopen-log-test-7d643026-f24e-11f1-af1b-776c5c2b952c"
    assert translate.app_name(long, "12e97a2a99") == "container-reopen-log-test-7d643026-f24e-12e97a2a"
    cut = translate.app_name("container-for-create-f2156b7a-f250-11f1-x", "abcdef0123456789")
    assert cut == "container-for-create-f2156b7a-f250-11f1-abcdef01"


def test_state_round_trips_and_survives_a_torn_record(tmp_path: Path) -> None:
    state = State(str(tmp_path))
    pod = SandboxRecord(id="11111111-2222", name="web", uid="u", namespace="ns", attempt=0, created_ns=1,
                        labels={"a": "b"})  # fmt: skip
    ctr = ContainerRecord(id=new_container_id(), sandbox_id=pod.id, app="app-1", name="app", attempt=0,
                          created_ns=2, image="busybox", image_ref="sha512-1")  # fmt: skip
    state.put_sandbox(pod)
    state.put_container(ctr)
    (tmp_path / "cri/containers/torn.json").write_text('{"id": ')
    again = State(str(tmp_path))
    again.load()
    assert again.sandboxes() == [pod] and again.containers() == [ctr]
    assert again.sandbox("1111") == pod and again.container(ctr.id[:10]) == ctr
    assert again.sandbox_named("web", "u", "ns", 0) == pod and again.container_named(pod.id, "app", 0) == ctr
    assert lookup_container(str(tmp_path), ctr.id) == ctr
    again.mark_stopped(pod.id)
    assert json.loads((tmp_path / f"cri/sandboxes/{pod.id}.json").read_text())["stopped"] is True
    again.drop_container(ctr.id)
    again.drop_sandbox(pod.id)
    assert State(str(tmp_path)).sandbox(pod.id) is None and again.containers() == []
    assert dataclasses.replace(pod, stopped=True) != pod


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (PodNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (Error("x"), grpc.StatusCode.INTERNAL),
        (KeyError("x"), grpc.StatusCode.INTERNAL),
        (Failure(grpc.StatusCode.ALREADY_EXISTS, "x"), grpc.StatusCode.ALREADY_EXISTS),
        (AccessDenied("x"), grpc.StatusCode.PERMISSION_DENIED),  # a registry's, though a RegistryError
        (DiskFull("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_status_codes(error: BaseException, code: grpc.StatusCode) -> None:
    assert code_of(error) is code


def test_errors_with_a_kind_map_by_it() -> None:
    error = Error("gone")
    error.kind = "not-found"  # type: ignore[attr-defined]
    assert code_of(error) is grpc.StatusCode.NOT_FOUND
    assert message_of(UsageError("bad", hint="do this")) == "bad (hint: do this)"
    assert message_of(KeyError("k")) == "KeyError: 'k'"
