"""The fly flavor (issue #25, ``--stage1=fly``): each app a host unit in its own root, the host's
network and PID namespace; asked for with all-run; exit codes, stop and gc as for any pod, and a
pod's later verbs run the stage1 that prepared it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration import test_pod_units, test_pods
from tests.integration.test_pod_units import Host, prop
from tests.integration.test_pods import Nspod, sh

pytestmark = pytest.mark.systemd
bb, nspod, host = test_pods.bb, test_pods.nspod, test_pod_units.host  # fixtures
FLY = ("--stage1=fly", "run", "--insecure-options=all-run")  # (after the verb: adds to image)


def pod_units() -> list[str]:
    """nspod's pod units on the host (the pods' own and their fly apps'; not the metadata service an
    earlier test of the session may have left running)."""
    listed = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*")
    return [line for line in listed.splitlines() if not line.startswith("nspod-metadata")]


def pods(nspod: Nspod) -> list[dict[str, object]]:
    return list(json.loads(nspod("list", "--full", "--format", "json").stdout))


@pytest.mark.parametrize("code", [0, 3, 7])
def test_fly_passes_the_exit_code_through(nspod: Nspod, bb: Path, code: int) -> None:
    result = nspod(*FLY, str(bb), "--exec=/bin/sh", "--", "-c", f"echo out-{code}; exit {code}")
    assert result.returncode == code, (result.stdout, result.stderr)
    [pod] = pods(nspod)
    assert pod["state"] == "exited"
    status = nspod.status(str(pod["uuid"]))
    assert status["app-bb"] == str(code)
    assert status.get("stage1") == "fly"
    assert nspod("list", "--format", "{{.Stage1}}").stdout == "fly\n"
    assert f"out-{code}" in nspod("logs", str(pod["uuid"])).stdout


def test_fly_is_refused_without_all_run(nspod: Nspod, bb: Path) -> None:
    result = nspod("--stage1=fly", "run", str(bb), "--exec=/bin/true")
    assert result.returncode == 254 and "all-run" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the error and its hint
    assert pods(nspod) == []


def test_a_fly_pod_is_stopped_and_collected_by_plain_verbs(nspod: Nspod, bb: Path) -> None:
    started = nspod(*FLY, "--detach", str(bb), "--exec=/bin/sh", "--", "-c", "sleep 600")
    assert started.returncode == 0, started.stderr
    [pod] = pods(nspod)
    uuid = str(pod["uuid"])
    assert pod["state"] == "running"
    units = sh("systemctl", "list-units", "--no-legend", "--plain", f"nspod-fly-{uuid}-*")
    assert "running" in units  # the app: a unit of the host's
    assert sh("machinectl", "list", "--no-legend").strip() == ""  # no machine registered
    # the host's PID namespace: the app's sleep is a process of the host's
    assert "sleep 600" in sh("ps", "-eo", "args")
    # enter: a command in the app's root and profile, its exit status passed through
    entered = nspod("enter", uuid, "--", "/bin/sh", "-c", "test -e /bin/busybox && echo inside; exit 4")
    assert (entered.returncode, entered.stdout) == (4, "inside\n"), entered.stderr
    stopped = nspod("stop", uuid)  # no --stage1: the pod's own is fly
    assert stopped.returncode == 0, stopped.stderr
    [pod] = pods(nspod)
    assert pod["state"] == "exited"
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert pods(nspod) == []
    assert str(nspod.data) not in Path("/proc/self/mountinfo").read_text()
    assert not pod_units(), pod_units()


@pytest.mark.parametrize("value", ["nope", "/no/such/stage1"])
def test_a_stage1_that_is_no_flavor_nor_path_is_a_usage_error(nspod: Nspod, bb: Path, value: str) -> None:
    result = nspod(f"--stage1={value}", "run", str(bb), "--exec=/bin/true")
    assert result.returncode == 2 and result.stderr.startswith("nspod: --stage1="), result.stderr


def test_a_prepared_fly_pod_runs_with_its_own_stage1(nspod: Nspod, bb: Path) -> None:
    prepared = nspod("--stage1=fly", "prepare", "--insecure-options=all-run", str(bb), "--exec=/bin/sh",
                     "--", "-c", "exit 5")  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    uuid = prepared.stdout.strip().splitlines()[-1]
    ran = nspod("run-prepared", uuid)  # no --stage1: the pod's own
    assert ran.returncode == 5, (ran.stdout, ran.stderr)
    assert nspod.status(uuid)["stage1"] == "fly"
    annotations = json.loads(nspod("cat-manifest", uuid).stdout)["annotations"]
    assert {"name": "nspod.io/stage1", "value": "fly"} in annotations


def test_pod_unit_with_stage1_fly(host: Host, bb: Path) -> None:
    host.pod_file(
        "flier",
        f"""
stage1 = "fly"
insecure-options = ["all-run"]
[[app]]
image = "{bb}"
exec = "/bin/sh"
args = ["-c", "echo flying; exec sleep 300"]
""",
    )
    started = subprocess.run(["systemctl", "start", "pod@flier"], capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr + sh("journalctl", "-u", "pod@flier", "--no-pager")
    assert prop("pod@flier.service", "ActiveState") == "active"
    [pod] = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
    assert pod["state"] == "running"
    assert sh("machinectl", "list", "--no-legend").strip() == ""
    stopped = subprocess.run(["systemctl", "stop", "pod@flier"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0
    assert prop("pod@flier.service", "Result") == "success", sh("journalctl", "-u", "pod@flier")
    [pod] = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
    assert pod["state"] == "exited"
    assert sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-fly-*").strip() == ""


def test_gc_takes_away_what_a_killed_fly_pod_left(nspod: Nspod, bb: Path) -> None:
    started = nspod(*FLY, "--detach", str(bb), "--exec=/bin/sh", "--", "-c", "sleep 600")
    assert started.returncode == 0, started.stderr
    [pod] = pods(nspod)
    unit = str(pod["unit"])
    main = int(prop(unit, "MainPID"))
    assert main > 0 and str(nspod.data) in Path("/proc/self/mountinfo").read_text()  # the app's root
    os.kill(main, signal.SIGKILL)  # the supervisor: its apps go with its unit (BindsTo=)
    deadline = time.monotonic() + 10
    while pods(nspod)[0]["state"] != "exited" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pods(nspod)[0]["state"] == "exited"
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert pods(nspod) == []
    assert str(nspod.data) not in Path("/proc/self/mountinfo").read_text()
    assert not pod_units(), pod_units()
