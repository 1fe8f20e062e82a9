"""A CRI sandbox's cgroup parent (a systemd slice name, checked: it reaches systemd) carried to
the pod's host unit and found again by stats, and the OOM killer's reason carried from the pod's
reaper to ContainerStatus."""

from __future__ import annotations

from pathlib import Path

import pytest

from stage0.api.views import AppState, AppView, recorded_app
from stage0.cri import stats
from stage0.cri.containers import exit_reason
from stage0.cri.proto import api_pb2
from stage0.cri.status import Failure
from stage0.cri.translate import cgroup_parent, sandbox_request
from stage0.host import cgroups
from stage0.pods.dirs import DirState, Pod
from stage1.abi import PodPaths, PodSpec
from stage1.nspawn.service import pod_service

KUBEPODS = "kubepods-burstable-pod12_ab.slice"


@pytest.mark.parametrize("name", ["", "machine.slice", KUBEPODS, "kubepods.slice", "a_b:c.slice"])
def test_slice_names_pass(name: str) -> None:
    assert cgroup_parent(name) == name


@pytest.mark.parametrize(
    "name",
    ["-.slice", "a--b.slice", "a-.slice", "-a.slice", ".slice", "a..slice", "../a.slice", "a/b.slice",
     "x.service", "x.slice/..", "a\\x2db.slice", "a b.slice", "a\n.slice", "a.slice\n",
     "x" * 250 + ".slice"],
)  # fmt: skip
def test_other_names_are_invalid_arguments(name: str) -> None:
    with pytest.raises(Failure) as raised:
        cgroup_parent(name)
    assert "INVALID_ARGUMENT" in str(raised.value.code)


def test_a_cgroupfs_path_is_refused_with_the_driver_to_use() -> None:
    with pytest.raises(Failure, match="cgroup-driver=systemd"):
        cgroup_parent("/kubepods/burstable/pod12")


def test_the_request_and_the_pod_unit_carry_the_slice(tmp_path: Path) -> None:
    metadata = api_pb2.PodSandboxMetadata(name="p", uid="u", namespace="n")
    linux = api_pb2.LinuxPodSandboxConfig(cgroup_parent=KUBEPODS)
    request = sandbox_request(api_pb2.PodSandboxConfig(metadata=metadata, linux=linux))
    assert request.cgroup_parent == KUBEPODS
    plain = sandbox_request(api_pb2.PodSandboxConfig(metadata=metadata))
    assert plain.cgroup_parent == ""
    spec = PodSpec(uuid="0" * 8, machine="nspod-x", hostname="x", apps=(), slice=KUBEPODS)
    assert PodSpec.from_json(spec.to_json()).slice == KUBEPODS
    old = spec.to_json().replace(f'"slice": "{KUBEPODS}",', "")
    assert PodSpec.from_json(old).slice == ""  # an earlier spec: machine.slice
    for slice_, expected in ((KUBEPODS, KUBEPODS), ("", "machine.slice")):
        unit = pod_service(PodSpec(uuid="0" * 8, machine="nspod-x", hostname="x", apps=(), slice=slice_),
                           PodPaths(str(tmp_path)))  # fmt: skip
        assert ("Slice", "s", expected) in [(p.name, p.signature, p.value) for p in unit.properties()]


def test_stats_find_the_pod_under_its_slice(tmp_path: Path) -> None:
    assert cgroups.slice_group("machine.slice") == "/machine.slice"
    group = f"/kubepods.slice/kubepods-burstable.slice/{KUBEPODS}/nspod-x.service"
    assert cgroups.slice_group(KUBEPODS) + "/nspod-x.service" == group
    root = tmp_path / "cgroup"
    (root / group.lstrip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    pod = tmp_path / "pod"
    pod.mkdir()
    (pod / "unit").write_text("nspod-x.service\n")
    spec = PodSpec(uuid="0" * 8, machine="nspod-x", hostname="x", apps=(), slice=KUBEPODS)
    (pod / "pod.json").write_text(spec.to_json())
    assert stats.pod_group(PodPaths(str(pod)), str(root)) == group


def test_an_oom_killed_app_says_so(tmp_path: Path) -> None:
    line = {"name": "web", "state": "exited", "exit_code": 137, "signal": "SIGKILL", "reason": "oom-kill"}
    view = AppView.of(line)
    assert view.reason == "oom-kill" and exit_reason(view) == "OOMKilled"
    assert exit_reason(AppView.of({**line, "reason": None})) == "Error"
    assert exit_reason(AppView.of({**line, "exit_code": 0, "reason": None})) == "Completed"
    status = tmp_path / "pod" / "status"
    status.mkdir(parents=True)
    (status / "web.started").write_text("1700000000\n")
    (status / "web").write_text("137\n")
    (status / "web.reason").write_text("oom-kill\n")
    ended = recorded_app(Pod(uuid="0" * 8, where=DirState.EXITED_GARBAGE, path=str(tmp_path / "pod")), "web")
    assert (ended.state, ended.exit_code, ended.reason) == (AppState.EXITED, 137, "oom-kill")
