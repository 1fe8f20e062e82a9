"""Live limits (issue #11, item 6): ``nspod update`` sets a running app's memory and CPU limits
through the pod's own systemd and records them for ``status``; the pod's own unit is bounded by
the sum of its apps' limits (what holds on a cgroup v1 host)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd


def show(*args: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", *args], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines())


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, object]:
    base = tmp_path_factory.mktemp("update")
    image = probe_image(base / "img", probe, ["sleep", "600"], notify=False)
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", "--name=limits", str(image), "--name=a", "--memory=100M", "--cpu=200m",
                str(image), "--name=b", "--memory=200M", "--cpu=300m")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen: dict[str, object] = {}
    try:
        seen["before"] = show("nspod-limits.service", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec")
        done = nspod("update", "--app=b", "--memory=1G", "--cpu=1", "limits")
        assert done.returncode == 0, done.stderr
        seen["app"] = show("--machine=limits", "b.service", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec")
        seen["pod"] = show("nspod-limits.service", "-p", "MemoryMax", "-p", "CPUQuotaPerSecUSec")
        seen["status"] = json.loads(nspod("status", "--format=json", "limits").stdout)["profile"]
        seen["no-app"] = nspod("update", "--memory=1G", "limits")
    finally:
        nspod("stop", "limits")
    seen["stopped"] = nspod("update", "--app=a", "--memory=1G", "limits")
    return seen


def test_the_pods_unit_is_bounded_by_the_sum_of_its_apps(updated: dict[str, object]) -> None:
    assert updated["before"] == {"MemoryMax": "300000000", "CPUQuotaPerSecUSec": "500ms"}


def test_update_sets_the_running_apps_limits(updated: dict[str, object]) -> None:
    assert updated["app"] == {"MemoryMax": "1000000000", "CPUQuotaPerSecUSec": "1s"}


def test_update_moves_the_pods_bound_along(updated: dict[str, object]) -> None:
    assert updated["pod"] == {"MemoryMax": "1100000000", "CPUQuotaPerSecUSec": "1.200000s"}


def test_status_shows_the_updated_limits(updated: dict[str, object]) -> None:
    status = updated["status"]
    assert isinstance(status, dict)
    assert (status["b"]["memory_max"], status["b"]["cpu_quota_percent"]) == (1_000_000_000, 100)
    assert (status["a"]["memory_max"], status["a"]["cpu_quota_percent"]) == (100_000_000, 20)


def test_update_of_a_pod_of_several_apps_needs_one_named(updated: dict[str, object]) -> None:
    failed = updated["no-app"]
    assert isinstance(failed, subprocess.CompletedProcess)
    assert failed.returncode == 254 and "choose one with --app (a, b)" in failed.stderr


def test_update_of_a_pod_that_ended_is_refused(updated: dict[str, object]) -> None:
    failed = updated["stopped"]
    assert isinstance(failed, subprocess.CompletedProcess)
    assert failed.returncode == 254 and "only a running pod can be updated" in failed.stderr
