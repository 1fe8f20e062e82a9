"""The CRI's security contexts as nspod requests (stage0/cri/security.py, seccomp_profile.py), on
real CRI messages: what each critest "Security Context", "sysctls" and privileged spec sends."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from stage0.cri.proto import api_pb2 as cri
from stage0.cri.seccomp_profile import profile_filter
from stage0.cri.security import capability_name, container_security, pod_security
from stage0.cri.status import Failure
from stage0.pods.requests import AppRequest, Confinement, PodRequest
from stage1.app_unit import DEFAULT_CAPABILITIES

BLOCK_HOSTNAME = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}],
}
PROFILES = {"/var/tmp/block-hostname.json": json.dumps(BLOCK_HOSTNAME)}


def sandbox(**security: Any) -> cri.PodSandboxConfig:
    sysctls = security.pop("sysctls", {})
    return cri.PodSandboxConfig(
        linux=cri.LinuxPodSandboxConfig(
            security_context=cri.LinuxSandboxSecurityContext(**security), sysctls=sysctls
        )
    )


def container(resources: cri.LinuxContainerResources | None = None, **security: Any) -> cri.ContainerConfig:
    return cri.ContainerConfig(
        linux=cri.LinuxContainerConfig(
            security_context=cri.LinuxContainerSecurityContext(**security), resources=resources
        )
    )


def app(config: cri.ContainerConfig, pod: cri.PodSandboxConfig | None = None) -> AppRequest:
    return container_security(
        config, pod or sandbox(), None, AppRequest("busybox"), read=PROFILES.__getitem__
    )


def confinement(config: cri.ContainerConfig, pod: cri.PodSandboxConfig | None = None) -> Confinement:
    given = app(config, pod).confinement
    assert given is not None
    return given


def code(error: pytest.ExceptionInfo[Failure]) -> grpc.StatusCode:
    return error.value.code


def test_the_default_set_is_stage1s() -> None:
    from stage0.cri.security import DEFAULT_SET

    assert set(DEFAULT_CAPABILITIES) == DEFAULT_SET


# the sandbox


def test_a_sandbox_keeps_every_capability_for_its_containers() -> None:
    assert pod_security(sandbox(), PodRequest(apps=(), sandbox=True)).capabilities == ("ALL",)


def test_host_network_is_net_host_and_the_pods_own_is_the_default() -> None:
    node = cri.NamespaceOption(network=cri.NamespaceMode.NODE)
    assert pod_security(sandbox(namespace_options=node), PodRequest(apps=())).nets == ("host",)
    assert pod_security(sandbox(), PodRequest(apps=(), nets=("default",))).nets == ("default",)


def test_host_pid_is_a_fly_sandbox_and_the_pods_own_pid_namespace_is_the_default() -> None:
    node = cri.NamespaceOption(pid=cri.NamespaceMode.NODE)
    assert pod_security(sandbox(namespace_options=node), PodRequest(apps=())).host_pid
    assert not pod_security(sandbox(), PodRequest(apps=())).host_pid


def test_a_container_asking_for_host_pid_in_a_sandbox_that_did_not_is_refused() -> None:
    node = cri.NamespaceOption(pid=cri.NamespaceMode.NODE)
    with pytest.raises(Failure) as error:
        container_security(container(namespace_options=node), sandbox(), None, AppRequest(image="x"))
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT and "hostPID" in error.value.message
    request = container_security(
        container(namespace_options=node), sandbox(namespace_options=node), None, AppRequest(image="x")
    )
    assert request.image == "x"


def test_a_containers_own_pid_namespace_is_taken_as_the_pods() -> None:
    options = cri.NamespaceOption(pid=cri.NamespaceMode.CONTAINER)
    assert pod_security(sandbox(namespace_options=options), PodRequest(apps=())).nets == ()


def test_safe_and_unsafe_sysctls_of_the_pods_namespaces_are_the_pods() -> None:
    pod = sandbox(
        sysctls={"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_forward": "1"}
    )
    assert pod_security(pod, PodRequest(apps=())).sysctl == (
        ("fs.mqueue.msg_max", "100"),
        ("kernel.shm_rmid_forced", "1"),
        ("net.ipv4.ip_forward", "1"),
    )


@pytest.mark.parametrize(
    ("key", "network"),
    [("kernel.hostname", cri.NamespaceMode.POD), ("net.ipv4.ip_forward", cri.NamespaceMode.NODE)],
)
def test_a_sysctl_of_the_host_is_refused(key: str, network: cri.NamespaceMode) -> None:
    pod = sandbox(sysctls={key: "1"}, namespace_options=cri.NamespaceOption(network=network))
    with pytest.raises(Failure) as error:
        pod_security(pod, PodRequest(apps=()))
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT and key in error.value.message


def test_a_sandbox_group_without_a_user_is_refused() -> None:
    with pytest.raises(Failure):
        pod_security(sandbox(run_as_group=cri.Int64Value(value=1002)), PodRequest(apps=()))


# users and groups


def test_run_as_user_and_group() -> None:
    request = app(container(run_as_user=cri.Int64Value(value=1001), run_as_group=cri.Int64Value(value=1002)))
    assert (request.user, request.group) == ("1001", "1002")


def test_user_zero_is_a_user() -> None:
    assert app(container(run_as_user=cri.Int64Value(value=0))).user == "0"


def test_run_as_username_is_resolved_by_the_planner_in_the_image() -> None:
    request = app(container(run_as_username="nobody"))
    assert request.user == "nobody" and request.group is None
    assert confinement(container(run_as_username="nobody")).image_groups


def test_run_as_group_without_a_user_is_invalid() -> None:
    with pytest.raises(Failure) as error:
        app(container(run_as_group=cri.Int64Value(value=1002)))
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT


def test_the_image_user_stands_when_none_is_given() -> None:
    request = app(container())
    assert request.user is None and request.group is None


def test_supplemental_groups_and_read_only_rootfs() -> None:
    request = app(container(supplemental_groups=[1234, 5678], readonly_rootfs=True))
    assert request.supplementary_gids == (1234, 5678) and request.read_only_rootfs


# capabilities, privileged


@pytest.mark.parametrize(
    ("given", "name"), [("NET_ADMIN", "CAP_NET_ADMIN"), ("cap_sys_admin", "CAP_SYS_ADMIN"), ("ALL", "ALL")]
)
def test_capability_names(given: str, name: str) -> None:
    assert capability_name(given) == name


def test_added_and_dropped_capabilities() -> None:
    caps = cri.Capability(add_capabilities=["NET_ADMIN"], drop_capabilities=["NET_RAW"])
    given = confinement(container(capabilities=caps))
    assert given.capabilities_added == ("CAP_NET_ADMIN",) and given.capabilities_dropped == ("CAP_NET_RAW",)


def test_a_bad_capability_is_invalid() -> None:
    with pytest.raises(Failure):
        app(container(capabilities=cri.Capability(add_capabilities=["NET ADMIN; rm"])))


def test_privileged_needs_a_privileged_sandbox() -> None:
    with pytest.raises(Failure) as error:
        app(container(privileged=True), sandbox())
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT
    given = confinement(
        container(privileged=True, seccomp_profile_path="localhost/x"), sandbox(privileged=True)
    )
    assert given.privileged and given.seccomp_mode == ""  # the profile is not even read


# seccomp


@pytest.mark.parametrize(
    ("path", "mode"),
    [("", "unconfined"), ("unconfined", "unconfined"), ("runtime/default", ""), ("docker/default", "")],
)
def test_seccomp_profile_paths(path: str, mode: str) -> None:
    assert confinement(container(seccomp_profile_path=path)).seccomp_mode == mode


def test_a_localhost_profile_is_read_and_converted() -> None:
    given = confinement(container(seccomp_profile_path="localhost//var/tmp/block-hostname.json"))
    assert (given.seccomp_mode, given.seccomp_set, given.seccomp_errno) == (
        "remove",
        ("sethostname",),
        "EPERM",
    )


def test_the_security_profile_wins_over_the_path() -> None:
    profile = cri.SecurityProfile(
        profile_type=cri.SecurityProfile.ProfileType.Localhost, localhost_ref="/var/tmp/block-hostname.json"
    )
    assert confinement(container(seccomp=profile, seccomp_profile_path="unconfined")).seccomp_set == (
        "sethostname",
    )
    default = cri.SecurityProfile(profile_type=cri.SecurityProfile.ProfileType.RuntimeDefault)
    assert confinement(container(seccomp=default)).seccomp_mode == ""
    unconfined = cri.SecurityProfile(profile_type=cri.SecurityProfile.ProfileType.Unconfined)
    assert confinement(container(seccomp=unconfined)).seccomp_mode == "unconfined"


@pytest.mark.parametrize("path", ["/var/tmp/block-hostname.json", "localhost/relative.json", "foo/bar"])
def test_a_profile_without_localhost_or_not_absolute_is_refused(path: str) -> None:
    with pytest.raises(Failure) as error:
        app(container(seccomp_profile_path=path))
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT


def test_an_allow_list_profile_with_caps_and_args() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}],
            },
            {"names": ["sethostname"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    text = json.dumps(profile)
    assert profile_filter(text, "p", frozenset({"CAP_CHOWN"})) == (
        "retain",
        ("read", "write", "clone", "ptrace"),
        "ENOSYS",
    )
    assert profile_filter(text, "p", None) == ("retain", ("read", "write", "clone", "sethostname"), "ENOSYS")


@pytest.mark.parametrize(
    "profile",
    [
        "not json",
        {"syscalls": []},
        {"defaultAction": "SCMP_ACT_WHAT"},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["@mount"], "action": "SCMP_ACT_ERRNO"}]},
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1}]}],
        },
    ],
)
def test_profiles_nspod_cannot_honour_are_refused(profile: Any) -> None:
    with pytest.raises(Failure):
        profile_filter(profile if isinstance(profile, str) else json.dumps(profile), "p", None)


# the rest of the context, resources


def test_no_new_privs_masked_and_readonly_paths() -> None:
    given = confinement(container(no_new_privs=True, masked_paths=["/bin/ls"], readonly_paths=["/tmp"]))
    assert (
        given.no_new_privileges is True
        and given.masked_paths == ("/bin/ls",)
        and given.readonly_paths == ("/tmp",)
    )
    assert confinement(container()).no_new_privileges is False
    with pytest.raises(Failure):
        app(container(masked_paths=["relative"]))


@pytest.mark.parametrize(
    "path", ["/proc/../etc/shadow", "/sys/./x", "//etc", "/a b", "/x%n", "/a'b", "/a\\b", "/a:b", "/a;b"]
)
@pytest.mark.parametrize("field", ["masked_paths", "readonly_paths"])
def test_a_path_unit_settings_would_read_otherwise_is_refused(field: str, path: str) -> None:
    given: dict[str, Any] = {field: [path]}
    with pytest.raises(Failure) as error:
        app(container(**given))
    assert code(error) is grpc.StatusCode.INVALID_ARGUMENT
    # kubelet's own lists pass
    given = {field: ["/proc/acpi", "/proc/kcore", "/proc/timer_list", "/sys/firmware", "/proc/sys"]}
    assert confinement(container(**given)) is not None


def test_resources_at_create_are_isolators() -> None:
    resources = cri.LinuxContainerResources(
        memory_limit_in_bytes=64 << 20,
        cpu_quota=50_000,
        cpu_period=100_000,
        cpu_shares=512,
        oom_score_adj=100,
    )
    given = {str(i.name): i.value for i in app(container(resources=resources)).overrides}
    assert given == {
        "resource/memory": {"limit": str(64 << 20)},
        "resource/cpu": {"limit": "500m"},
        "os/linux/cpu-shares": 512,
        "os/linux/oom-score-adj": 100,
    }
    assert app(container()).overrides == ()
