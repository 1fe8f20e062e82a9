"""A PID namespace of an app's own (stage1/pidns.py): what the unit is widened by for nspod-pidns,
and what the helper is told to give back, so that the app ends with the confinement it had."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from stage0.cri.proto import api_pb2 as cri
from stage0.cri.security import container_security
from stage0.cri.status import Failure
from stage0.pods.requests import AppRequest
from stage1.abi import AppSpec
from stage1.app_unit import app_unit, profile
from stage1.pidns import CALLS, HELPER, OWN, denied, given_back, widened, wrapped

APP = AppSpec(name="a", rootfs="/r", exec=("/bin/sleep", "60"))
OWN_APP = dataclasses.replace(APP, pid_namespace=OWN)


def settings(app: AppSpec) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in widened(app, profile(app)):
        out.setdefault(key, []).append(value)
    return out


def test_an_app_in_the_pods_pid_namespace_is_left_as_it_is() -> None:
    assert widened(APP, profile(APP)) == profile(APP)
    assert wrapped(APP, profile(APP), APP.exec) == APP.exec
    assert ("Service", "ExecStart", "/bin/sleep 60") in app_unit(APP)


def test_the_unit_is_widened_by_what_the_helper_needs_alone() -> None:
    got = settings(OWN_APP)
    bounding = got["CapabilityBoundingSet"][0].split()
    assert "CAP_SYS_ADMIN" in bounding and "CAP_SETPCAP" in bounding
    assert got["RestrictNamespaces"] == ["pid mnt"]
    assert got["SystemCallFilter"][-1] == " ".join(CALLS)
    assert f"/nspod/bin/pidns:{HELPER}" in got["BindReadOnlyPaths"]
    assert "AmbientCapabilities" not in got  # root: the bounding set is enough


def test_the_helper_gives_back_every_widening() -> None:
    # nspod's default: no CAP_SYS_ADMIN (21), a filter denying the six calls, namespaces restricted
    assert given_back(OWN_APP, profile(OWN_APP)) == [
        "--drop=21",
        f"--deny={','.join(CALLS)}",
        "--errno=1",
        "--restrict",
    ]
    unit = dict((k, v) for _, k, v in app_unit(OWN_APP))
    assert (
        unit["ExecStart"]
        == f"{HELPER} --drop=21 --deny={','.join(CALLS)} --errno=1 --restrict -- /bin/sleep 60"
    )


def test_an_app_that_is_not_root_gets_the_two_as_ambient_ones_and_keeps_no_other() -> None:
    user = dataclasses.replace(OWN_APP, user=1000, group=1000)
    assert settings(user)["AmbientCapabilities"] == ["CAP_SETPCAP CAP_SYS_ADMIN"]
    assert given_back(user, profile(user))[0] == "--drop=21"  # CAP_SETPCAP: nspod's default set has it
    privileged_user = dataclasses.replace(user, privileged=True)
    assert settings(privileged_user)["AmbientCapabilities"] == ["CAP_SETPCAP CAP_SYS_ADMIN"]
    assert given_back(privileged_user, profile(privileged_user)) == []  # ambient ones: always cleared


def test_what_an_app_already_has_is_not_taken() -> None:
    privileged = dataclasses.replace(OWN_APP, privileged=True)
    assert given_back(privileged, profile(privileged)) == []
    unconfined = dataclasses.replace(
        OWN_APP, seccomp_mode="unconfined", capabilities_added=("CAP_SYS_ADMIN",)
    )
    assert given_back(unconfined, profile(unconfined)) == []
    dropped_all = dataclasses.replace(OWN_APP, capabilities_removed=("ALL",))
    assert given_back(dropped_all, profile(dropped_all))[0] == "--drop=8,21"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([], ()),
        (["~@mount unshare setns"], CALLS),
        (["~@clock"], ()),  # a deny-list without them
        (["~@mount", "mount"], ("umount2", "open_tree", "move_mount")),  # an allow line takes out
        (["read write mount"], tuple(c for c in CALLS if c != "mount")),  # an allow-list
        (["@known", "~unshare setns"], ("unshare", "setns")),  # Docker's: everything but its list
    ],
)
def test_which_of_the_helpers_calls_the_apps_filter_denies(
    lines: list[str], expected: tuple[str, ...]
) -> None:
    assert denied([("SystemCallFilter", line) for line in lines]) == expected


def test_an_exec_joins_the_apps_namespace_through_its_main_process() -> None:
    argv = wrapped(OWN_APP, profile(OWN_APP), ("cat", "/proc/1/cmdline"), join=42)
    assert argv[:2] == (HELPER, "--join=42") and argv[-3:] == ("--", "cat", "/proc/1/cmdline")


def _container(mode: cri.NamespaceMode) -> cri.ContainerConfig:
    options = cri.NamespaceOption(pid=mode)
    security = cri.LinuxContainerSecurityContext(namespace_options=options)
    return cri.ContainerConfig(linux=cri.LinuxContainerConfig(security_context=security))


def test_the_cri_asks_for_it_with_pid_container_and_is_refused_without_the_helper() -> None:
    def given(mode: cri.NamespaceMode, built: bool = True) -> bool:
        request = container_security(
            _container(mode), cri.PodSandboxConfig(), None, AppRequest("b"), helper=lambda: built
        )
        assert request.confinement is not None
        return request.confinement.own_pid_namespace

    assert given(cri.NamespaceMode.CONTAINER) and not given(cri.NamespaceMode.POD)
    with pytest.raises(Failure) as error:
        given(cri.NamespaceMode.CONTAINER, built=False)
    assert error.value.code is grpc.StatusCode.FAILED_PRECONDITION
