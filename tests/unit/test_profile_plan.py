"""The rest of appc's isolator catalogue, planned (issue #11, item 2): seccomp sets with their
wildcards and errno, SELinux contexts, namespaced sysctls, and the bandwidth kinds nspod refuses.
What the unit makes of them is in the golden cases (seccomp-*, selinux-context)."""

from __future__ import annotations

from typing import Any

import pytest

from stage0.errors import SchemaError, UsageError
from stage0.pods.planner import PrepareError
from stage0.pods.requests import AppRequest, PodRequest, parse_isolator_flag
from stage1.abi import AppSpec
from stage1.seccomp import DEFAULT_DENIED, syscall_filter
from tests.unit.test_planner import SERVER, image, one


def planned(*isolators: dict[str, Any]) -> AppSpec:
    return one(images=[image({**SERVER, "isolators": list(isolators)})])


def test_a_seccomp_retain_set_with_its_errno() -> None:
    app = planned(
        {
            "name": "os/linux/seccomp-retain-set",
            "value": {"set": ["@rkt/default-whitelist", "ptrace"], "errno": "ENOSYS"},
        }
    )
    assert (app.seccomp_mode, app.seccomp_set, app.seccomp_errno) == (
        "retain",
        ("@rkt/default-whitelist", "ptrace"),
        "ENOSYS",
    )
    (allow, deny), errno = (
        [v for k, v in syscall_filter(app) if k == "SystemCallFilter"],
        syscall_filter(app)[-1],
    )
    assert allow == "@known ptrace" and "ptrace" not in deny.split() and "mount" in deny.split()
    assert errno == ("SystemCallErrorNumber", "ENOSYS")


def test_no_seccomp_isolator_is_the_default_deny_list_answering_eperm() -> None:
    assert syscall_filter(planned()) == [
        ("SystemCallFilter", "~" + " ".join(DEFAULT_DENIED)),
        ("SystemCallErrorNumber", "EPERM"),
    ]


@pytest.mark.parametrize(
    ("mode", "items", "expected"),
    [
        ("retain", ["@appc.io/all"], []),  # every call: no filter
        ("remove", ["@appc.io/empty"], []),  # nothing removed: no filter
        ("retain", ["@appc.io/empty"], ["~@known"]),  # nothing allowed
        ("remove", ["@systemd/clock", "sysfs"], ["~@clock sysfs"]),
        ("retain", ["@systemd/default-whitelist", "read"], ["@default read"]),
    ],
)
def test_wildcards(mode: str, items: list[str], expected: list[str]) -> None:
    app = planned({"name": f"os/linux/seccomp-{mode}-set", "value": {"set": items}})
    assert [v for k, v in syscall_filter(app) if k == "SystemCallFilter"] == expected


def test_an_isolator_holds_when_the_default_filter_is_relaxed() -> None:
    app = planned({"name": "os/linux/seccomp-remove-set", "value": {"set": ["sysfs"]}})
    relaxed = AppSpec(**{**{f: getattr(app, f) for f in app.__slots__}, "relaxed": ("seccomp",)})
    assert syscall_filter(relaxed)[0] == ("SystemCallFilter", "~sysfs")
    assert syscall_filter(AppSpec(name="a", rootfs="/", exec=("/x",), relaxed=("seccomp",))) == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"set": ["@nope/all"]}, "is not a system call name or wildcard"),
        ({"set": ["open at"]}, "is not a system call name or wildcard"),
        ({"set": ["read"], "errno": "EWHATEVER"}, "is not an errno name"),
    ],
)
def test_bad_seccomp_sets_are_refused(value: dict[str, Any], problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        planned({"name": "os/linux/seccomp-retain-set", "value": value})


def test_a_remove_set_cannot_hold_an_allow_list() -> None:
    with pytest.raises(SchemaError, match="cannot hold the allow-list @docker/default-whitelist"):
        planned({"name": "os/linux/seccomp-remove-set", "value": {"set": ["@docker/default-whitelist"]}})


def test_the_seccomp_flag_speaks_rkts_syntax() -> None:
    isolator = parse_isolator_flag("--seccomp", "mode=remove,errno=ENOSYS,sysfs,@docker/default-blacklist")
    assert str(isolator.name) == "os/linux/seccomp-remove-set"
    assert isolator.value == {"set": ["sysfs", "@docker/default-blacklist"], "errno": "ENOSYS"}


@pytest.mark.parametrize("text", ["sysfs", "mode=keep,sysfs", "mode=retain,level=3,read", "mode=retain"])
def test_bad_seccomp_flags_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad --seccomp"):
        parse_isolator_flag("--seccomp", text)


def test_a_command_line_seccomp_set_replaces_both_of_the_images() -> None:
    remove = parse_isolator_flag("--seccomp", "mode=remove,sysfs")
    retain = {"name": "os/linux/seccomp-retain-set", "value": {"set": ["read"]}}
    app = one(AppRequest("web", overrides=(remove,)), images=[image({**SERVER, "isolators": [retain]})])
    assert (app.seccomp_mode, app.seccomp_set) == ("remove", ("sysfs",))


def test_an_selinux_context_is_joined() -> None:
    context = {"user": "system_u", "role": "system_r", "type": "svirt_lxc_net_t", "level": "s0:c1,c2"}
    app = planned({"name": "os/linux/selinux-context", "value": context})
    assert app.selinux_context == "system_u:system_r:svirt_lxc_net_t:s0:c1,c2"


def test_namespaced_sysctls_are_kept_sorted() -> None:
    app = planned(
        {"name": "os/unix/sysctl", "value": {"kernel.shmmax": "1000000", "fs.mqueue.msg_max": "20"}}
    )
    assert app.sysctl == (("fs.mqueue.msg_max", "20"), ("kernel.shmmax", "1000000"))


@pytest.mark.parametrize(
    "key", ["kernel.core_pattern", "vm.swappiness", "net.ipv4.ip_forward", "kernel.shmmax/../x"]
)
def test_a_host_wide_sysctl_is_refused(key: str) -> None:
    with pytest.raises(PrepareError, match=f"sysctl {key} is not the pod's own"):
        planned({"name": "os/unix/sysctl", "value": {key: "1"}})


@pytest.mark.parametrize("kind", ["block-bandwidth", "block-iops", "network-bandwidth"])
def test_bandwidth_isolators_are_refused_not_ignored(kind: str) -> None:
    with pytest.raises(PrepareError, match=f"resource/{kind} is not supported"):
        planned({"name": f"resource/{kind}", "value": {"default": True, "limit": "1M"}})


def test_the_manifest_shows_the_isolators_in_effect_and_what_was_relaxed() -> None:
    from stage0.pods.planner import plan_pod
    from tests.unit.test_planner import UUID

    memory = parse_isolator_flag("--memory", "1G")
    retain = {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_CHOWN"]}}
    request = PodRequest(apps=(AppRequest("web", overrides=(memory,)),), relaxed=("paths",))
    _, manifest = plan_pod(UUID, request, [image({**SERVER, "isolators": [retain]})])
    data = manifest.to_json()
    assert data["apps"][0]["app"]["isolators"] == [
        retain,
        {"name": "resource/memory", "value": {"limit": "1G"}},
    ]
    assert {"name": "nspod.io/insecure-options", "value": "paths"} in data["annotations"]
