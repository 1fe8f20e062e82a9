"""Exit codes pass through every stage1 flavor (issue #25): a pod's code is its app's, or its first
failing app's, whether it ran as ``nspod --stage1=F run`` or as ``systemctl start pod@NAME`` with
``stage1 = "F"`` in its pod file. A flavor not built yet is skipped, and says so."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from stage0.pods.flavor import BUILT, Flavor
from tests.integration import test_pod_units, test_pods
from tests.integration.test_pod_units import Host, prop
from tests.integration.test_pods import Nspod, sh

pytestmark = pytest.mark.systemd
bb, nspod, host = test_pods.bb, test_pods.nspod, test_pod_units.host  # fixtures

# each case: its apps' shell scripts (by app name), the pod's expected exit code and its apps'. In
# the two-app pod the app listed second fails first: the pod's code is the first to fail, not the
# first listed, and the other app is stopped (SIGTERM: 143), as the first failure ends the pod
CASES = {
    "exit-0": ({"one": "exit 0"}, 0, {"one": "0"}),
    "exit-3": ({"one": "exit 3"}, 3, {"one": "3"}),
    "exit-7": ({"one": "exit 7"}, 7, {"one": "7"}),
    "first-failing-wins": ({"slow": "sleep 30; exit 7", "fast": "exit 3"}, 3, {"fast": "3", "slow": "143"}),
}
FLAVORS = [
    pytest.param(f, marks=[] if f in BUILT else pytest.mark.skip(reason=f"{f} flavor not built"))
    for f in Flavor
]


def consent(flavor: Flavor) -> tuple[str, ...]:
    """fly is no isolation boundary: a pod gets it only when asked with all-run."""
    return ("--insecure-options=all-run",) if flavor == Flavor.FLY else ()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_nspod_run_passes_the_code_through(nspod: Nspod, bb: Path, flavor: Flavor, case: str) -> None:
    scripts, code, codes = CASES[case]
    apps: list[str] = []
    for name, script in scripts.items():
        apps += ["---"] if apps else []
        apps += [str(bb), f"--name={name}", "--exec=/bin/sh", "--", "-c", script]
    result = nspod(f"--stage1={flavor}", "run", *consent(flavor), *apps, timeout=60)
    assert result.returncode == code, (result.stdout, result.stderr)
    [pod] = json.loads(nspod("list", "--full", "--format", "json").stdout)
    assert pod["state"] == "exited"
    status = nspod.status(str(pod["uuid"]))
    assert status["stage1"] == flavor
    assert {name: status.get(f"app-{name}") for name in scripts} == codes, status


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_pod_unit_passes_the_code_through(host: Host, bb: Path, flavor: Flavor, case: str) -> None:
    scripts, code, codes = CASES[case]
    options = '["all-run"]' if flavor == Flavor.FLY else "[]"
    text = f'stage1 = "{flavor}"\ninsecure-options = {options}\n' + "".join(
        f'[[app]]\nimage = "{bb}"\nname = "{name}"\nexec = "/bin/sh"\nargs = ["-c", "{script}"]\n'
        for name, script in scripts.items()
    )
    host.pod_file("ends", text)
    unit = "pod@ends.service"
    # a pod that ends at once may end before or after it is ready: either way start returns
    subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=60)
    deadline = time.monotonic() + 30
    while prop(unit, "ActiveState") not in ("inactive", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
    journal = sh("journalctl", "-u", unit, "--no-pager")
    assert prop(unit, "ActiveState") == ("inactive" if code == 0 else "failed"), journal
    assert prop(unit, "ExecMainStatus") == str(code), journal
    [pod] = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
    assert pod["state"] == "exited"
    said = host.nspod("status", str(pod["uuid"])).stdout.splitlines()
    status = dict(line.split("=", 1) for line in said if "=" in line)
    assert status.get("stage1", "nspawn") == flavor, status
    assert {name: status.get(f"app-{name}") for name in scripts} == codes, status
