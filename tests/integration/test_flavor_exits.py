"""Exit codes pass through every stage1 flavor (issue #25): a pod's code is its app's, or its first
failing app's, whether it ran as ``nspod --stage1=F run`` or as ``systemctl start pod@NAME`` with
``stage1 = "F"`` in its pod file. A flavor not built yet is skipped, and says so."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.pods.flavor import BUILT, Flavor
from tests.conftest import REPO
from tests.integration import test_pod_units, test_pods
from tests.integration.test_pod_units import UNIT_DIR, Host, prop
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


@pytest.fixture(scope="module")
def kvm_assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The kvm flavor's kernel and initramfs, built into a directory of the tests' own as its own
    tests build them, and named to every nspod (its variable, and the directory)."""
    try:
        assets = importlib.import_module("stage1.kvm.assets")
    except ImportError:
        pytest.skip("kvm flavor not built")
    if not os.path.exists("/usr/bin/qemu-system-x86_64"):
        pytest.skip("no QEMU")
    where = tmp_path_factory.mktemp("kvm-assets")
    subprocess.run([sys.executable, "-m", "stage1.kvm.assets", str(where)], check=True, cwd=REPO)
    os.environ[assets.ENV] = str(where)
    yield assets.ENV, where
    del os.environ[assets.ENV]


def ready(flavor: Flavor, request: pytest.FixtureRequest) -> tuple[str, Path] | None:
    """What the flavor needs before a pod (kvm: its assets), or None."""
    return request.getfixturevalue("kvm_assets") if flavor == Flavor.KVM else None


def consent(flavor: Flavor) -> tuple[str, ...]:
    """fly is no isolation boundary: a pod gets it only when asked with all-run."""
    return ("--insecure-options=all-run",) if flavor == Flavor.FLY else ()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_nspod_run_passes_the_code_through(
    nspod: Nspod, bb: Path, flavor: Flavor, case: str, request: pytest.FixtureRequest
) -> None:
    ready(flavor, request)
    scripts, code, codes = CASES[case]
    apps: list[str] = []
    for name, script in scripts.items():
        apps += ["---"] if apps else []
        apps += [str(bb), f"--name={name}", "--exec=/bin/sh", "--", "-c", script]
    result = nspod(f"--stage1={flavor}", "run", *consent(flavor), *apps, timeout=300)
    assert result.returncode == code, (result.stdout, result.stderr)
    [pod] = json.loads(nspod("list", "--full", "--format", "json").stdout)
    assert pod["state"] == "exited"
    status = nspod.status(str(pod["uuid"]))
    assert status["stage1"] == flavor
    assert {name: status.get(f"app-{name}") for name in scripts} == codes, status


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_pod_unit_passes_the_code_through(
    host: Host, bb: Path, flavor: Flavor, case: str, request: pytest.FixtureRequest
) -> None:
    assets = ready(flavor, request)
    scripts, code, codes = CASES[case]
    options = '["all-run"]' if flavor == Flavor.FLY else "[]"
    text = f'stage1 = "{flavor}"\ninsecure-options = {options}\n' + "".join(
        f'[[app]]\nimage = "{bb}"\nname = "{name}"\nexec = "/bin/sh"\nargs = ["-c", "{script}"]\n'
        for name, script in scripts.items()
    )
    host.pod_file("ends", text)
    unit = "pod@ends.service"
    dropin = UNIT_DIR / f"{unit}.d"
    if assets is not None:  # the unit's environment is systemd's, not ours
        dropin.mkdir(exist_ok=True)
        (dropin / "assets.conf").write_text(f"[Service]\nEnvironment={assets[0]}={assets[1]}\n")
        request.addfinalizer((dropin / "assets.conf").unlink)
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    # a pod that ends at once may end before or after it is ready: either way start returns
    subprocess.run(["systemctl", "start", unit], capture_output=True, text=True, timeout=300)
    deadline = time.monotonic() + (300 if assets else 30)
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
