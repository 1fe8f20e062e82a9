"""An orchestrator's confinement through the planner (stage0/confinement.py) into the app's unit
and the pod's nspawn (stage1): privileged, capabilities added and dropped, unconfined seccomp,
masked and read-only paths, escalation, the pod's own bounding set and sysctls."""

from __future__ import annotations

from typing import Any

import pytest

from stage0.errors import UsageError
from stage0.pods.confinement import pod_sysctl
from stage0.pods.requests import AppRequest, Confinement
from stage1.abi import AppSpec, PodSpec
from stage1.app_unit import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, masks, profile
from stage1.nspawn.service import capability_argv
from stage1.units import pod_target, sysctl_unit
from tests.unit.test_planner import image, one

SERVER = {"exec": ["/bin/server"]}


def planned(confinement: Confinement, **request: Any) -> AppSpec:
    return one(AppRequest("web", confinement=confinement, **request), images=[image(SERVER)])


def settings(app: AppSpec) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in profile(app, hidden=("/proc/kcore",)):
        found.setdefault(key, []).append(value)
    return found


def spec(**fields: Any) -> AppSpec:
    return AppSpec(name="web", rootfs="/r", exec=("/bin/server",), **fields)


# the planner


def test_no_confinement_leaves_the_app_as_planned() -> None:
    assert one(AppRequest("web"), images=[image(SERVER)]).capabilities_added == ()


def test_the_confinement_replaces_the_images_capabilities_and_filter() -> None:
    app = planned(Confinement(capabilities_added=("CAP_NET_ADMIN",), seccomp_mode="unconfined"))
    assert app.capabilities is None and app.capabilities_added == ("CAP_NET_ADMIN",)
    assert app.seccomp_mode == "unconfined"


def test_privileged_is_unconfined_and_escalation_relaxes_rkts_rule() -> None:
    app = planned(Confinement(privileged=True, no_new_privileges=False))
    assert app.privileged and app.seccomp_mode == "unconfined" and "no-new-privileges" in app.relaxed


def test_image_groups_give_a_numeric_user_its_primary_and_member_groups() -> None:
    app = planned(Confinement(image_groups=True), user="1000", supplementary_gids=(1234,))
    assert (app.user, app.group, app.supplementary_gids) == (1000, 1000, (1234,))
    named = planned(Confinement(image_groups=True), user="web", supplementary_gids=(1234,))
    assert (named.user, named.group, named.supplementary_gids) == (1000, 1000, (1234, 50000))


def test_a_user_unknown_to_the_image_gets_group_root_and_an_explicit_group_stands() -> None:
    assert planned(Confinement(image_groups=True), user="1001").group == 0
    assert planned(Confinement(image_groups=True), user="1001", group="1002").group == 1002


def test_pod_sysctls() -> None:
    assert pod_sysctl((("net.core.somaxconn", "1024"),), own_network=True) == (
        ("net.core.somaxconn", "1024"),
    )
    with pytest.raises(UsageError):
        pod_sysctl((("net.core.somaxconn", "1024"),), own_network=False)
    with pytest.raises(UsageError):
        pod_sysctl((("vm.swappiness", "1"),), own_network=True)


# the app's unit


def test_added_and_dropped_capabilities_shape_the_bounding_set() -> None:
    found = settings(spec(capabilities_added=("CAP_NET_ADMIN",), capabilities_removed=("CAP_NET_RAW",)))
    kept = found["CapabilityBoundingSet"][0].split()
    assert "CAP_NET_ADMIN" in kept and "CAP_NET_RAW" not in kept and len(kept) == len(DEFAULT_CAPABILITIES)


def test_all_added_and_all_dropped() -> None:
    assert set(settings(spec(capabilities_added=("ALL",)))["CapabilityBoundingSet"][0].split()) == set(
        ALL_CAPABILITIES
    )
    assert settings(spec(capabilities_removed=("ALL",)))["CapabilityBoundingSet"] == [""]


def test_privileged_lifts_the_confinement() -> None:
    found = settings(spec(privileged=True, seccomp_mode="unconfined", masked_paths=("/bin/ls",)))
    for gone in ("CapabilityBoundingSet", "SystemCallFilter", "RestrictNamespaces", "ProtectKernelTunables"):
        assert gone not in found
    assert found["DevicePolicy"] == ["auto"] and "InaccessiblePaths" not in found


def test_unconfined_loads_no_filter_but_keeps_the_kernels_paths() -> None:
    found = settings(spec(seccomp_mode="unconfined"))
    for gone in ("SystemCallFilter", "RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelLogs"):
        assert gone not in found  # each of these loads a filter
    assert found["ProtectControlGroups"] == ["yes"] and "/sys:/sys" in found["BindReadOnlyPaths"][0]
    assert found["CapabilityBoundingSet"][0].split() == list(DEFAULT_CAPABILITIES)


def test_escalation_allowed_for_a_user_under_a_filter() -> None:
    assert "NoNewPrivileges" in settings(spec(user=1000))
    assert "NoNewPrivileges" not in settings(spec(user=1000, relaxed=("no-new-privileges",)))
    assert settings(spec(user=1000, no_new_privileges=True))["NoNewPrivileges"] == ["yes"]


def test_masked_and_read_only_paths() -> None:
    app = spec(
        masked_paths=("/bin/ls", "/proc/kcore", "/proc/foo", "/proc/bar", "/proc/gone", "/dev/x"),
        readonly_paths=("/tmp", "/proc/sys"),
    )
    # /bin/ls is the volumes unit's (each path itself, a link not followed: test_volumes)
    assert masks(app, is_dir=lambda p: None if p == "/proc/gone" else p == "/proc/bar") == [
        ("InaccessiblePaths", "-/opt/stage2/web/rootfs/dev/x -/dev/x"),
        ("ReadOnlyPaths", "-/opt/stage2/web/rootfs/tmp -/tmp"),
        ("BindReadOnlyPaths", "-/dev/null:/proc/foo -/proc/sys:/proc/sys"),
        ("TemporaryFileSystem", "/proc/bar:ro"),
    ]


# the pod


def pod(*apps: AppSpec, **fields: Any) -> PodSpec:
    return PodSpec(uuid="u", machine="m", hostname="m", apps=apps, **fields)


def test_a_cri_sandbox_keeps_every_capability() -> None:
    assert capability_argv(pod(capabilities=("ALL",), sandbox=True)) == ["--capability=all"]
    assert capability_argv(pod(spec(privileged=True))) == ["--capability=all"]
    added = capability_argv(pod(spec(capabilities_added=("CAP_NET_ADMIN",))))
    assert added[0] == "--capability=CAP_NET_ADMIN"


def test_the_pods_sysctls_are_set_at_its_start() -> None:
    sandbox = pod(sysctl=(("kernel.shm_rmid_forced", "1"),), sandbox=True)
    assert "sysctl.service" in {k: v for _, k, v in pod_target(sandbox)}["Wants"]
    assert "kernel.shm_rmid_forced=1" in {k: v for _, k, v in sysctl_unit(sandbox)}["ExecStart"]
