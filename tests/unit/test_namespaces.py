"""The namespaces an app shares beyond its pod's (stage1/namespaces.py) and how the CRI's namespace
options reach them (stage0/cri/security.py): the host's IPC namespace only where asked for."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from stage0.cri.proto import api_pb2 as cri
from stage0.cri.security import container_security, pod_security
from stage0.cri.status import Failure
from stage0.pods.requests import AppRequest, PodRequest
from stage1.abi import AppSpec, PodSpec
from stage1.app_unit import app_unit, profile
from stage1.namespaces import HOST_IPC, host_ipc_argv, ipc_settings

NODE, POD = cri.NamespaceMode.NODE, cri.NamespaceMode.POD


def sandbox(sysctls: dict[str, str] | None = None, **options: Any) -> cri.PodSandboxConfig:
    security = cri.LinuxSandboxSecurityContext(namespace_options=cri.NamespaceOption(**options))
    return cri.PodSandboxConfig(linux=cri.LinuxPodSandboxConfig(security_context=security, sysctls=sysctls))


def container(**options: Any) -> cri.ContainerConfig:
    security = cri.LinuxContainerSecurityContext(namespace_options=cri.NamespaceOption(**options))
    return cri.ContainerConfig(linux=cri.LinuxContainerConfig(security_context=security))


def test_a_sandbox_shares_the_hosts_ipc_namespace_only_when_it_asks() -> None:
    assert pod_security(sandbox(ipc=NODE), PodRequest(apps=())).host_ipc
    assert not pod_security(sandbox(ipc=POD), PodRequest(apps=())).host_ipc
    assert not pod_security(sandbox(), PodRequest(apps=())).host_ipc


def test_ipc_sysctls_of_a_host_ipc_sandbox_are_refused() -> None:
    with pytest.raises(Failure) as error:
        pod_security(sandbox({"kernel.shm_rmid_forced": "1"}, ipc=NODE), PodRequest(apps=()))
    assert error.value.code is grpc.StatusCode.INVALID_ARGUMENT and "host's" in error.value.message
    # net.* stays the pod's own with a network of its own
    assert pod_security(sandbox({"net.ipv4.ip_forward": "1"}, ipc=NODE), PodRequest(apps=())).sysctl


def test_a_container_gets_the_hosts_ipc_namespace_only_in_a_host_ipc_sandbox() -> None:
    with pytest.raises(Failure) as error:
        container_security(container(ipc=NODE), sandbox(), None, AppRequest("busybox"))
    assert error.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert container_security(container(ipc=NODE), sandbox(ipc=NODE), None, AppRequest("busybox"))


def test_only_a_host_ipc_pod_binds_the_hosts_ipc_namespace() -> None:
    assert host_ipc_argv(False) == [] and ipc_settings(False) == []
    assert host_ipc_argv(True) == [f"--bind-ro=/proc/self/ns/ipc:{HOST_IPC}"]
    assert ipc_settings(True) == [("PrivateIPC", "yes"), ("IPCNamespacePath", HOST_IPC)]


def test_the_app_and_what_is_entered_join_the_hosts_ipc_namespace_alike() -> None:
    app = AppSpec(name="a", rootfs="/r", exec=("/bin/sh",))
    assert ("IPCNamespacePath", HOST_IPC) not in profile(app)
    assert ("IPCNamespacePath", HOST_IPC) in profile(app, host_ipc=True)
    assert ("Service", "IPCNamespacePath", HOST_IPC) in app_unit(app, host_ipc=True)


def test_a_pod_spec_keeps_host_ipc_and_reads_older_specs_without_it() -> None:
    spec = PodSpec(uuid="u", machine="m", hostname="h", apps=(), host_ipc=True)
    assert PodSpec.from_json(spec.to_json()).host_ipc
    older = spec.to_json().replace('"host_ipc": true', '"host_ipc": false').replace('"abi": 10', '"abi": 8')
    assert not PodSpec.from_json(older).host_ipc
