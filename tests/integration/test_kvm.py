"""The kvm flavor (issue #25, ``--stage1=kvm``): each pod a VM booting Debian's cloud kernel with
the host's systemd on the pod's tree (shared by virtiofsd). Under TCG (no hardware virtualization
here) a boot costs ~10 s of a core: each test is one VM, and checks what it can in that one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage1.kvm import assets
from tests.conftest import REPO
from tests.integration import test_pod_units, test_pods
from tests.integration.test_pod_units import UNIT_DIR, Host, prop
from tests.integration.test_pods import Nspod, sh

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not os.path.exists("/usr/bin/qemu-system-x86_64"), reason="no QEMU"),
]
bb, nspod, host = test_pods.bb, test_pods.nspod, test_pod_units.host  # fixtures
KVM = ("--stage1=kvm", "run")


@pytest.fixture(scope="module", autouse=True)
def kvm_assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The kernel and initramfs built into a directory of the tests' own, named to every nspod."""
    where = tmp_path_factory.mktemp("kvm-assets")
    subprocess.run([sys.executable, "-m", "stage1.kvm.assets", str(where)], check=True, cwd=REPO)
    os.environ[assets.ENV] = str(where)
    yield where
    del os.environ[assets.ENV]


def pods(nspod: Nspod) -> list[dict[str, object]]:
    return list(json.loads(nspod("list", "--full", "--format", "json").stdout))


def kvm_units() -> str:
    return sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*.service")


GUEST = "; ".join(
    [
        "echo kernel=$(uname -r)",
        "cat /proc/version",
        "echo pid1=$(cat /proc/1/comm)",
    ]
)


@pytest.mark.parametrize("code", [3, 0, 7])
def test_exit_codes_pass_through_and_the_kernel_is_the_guests(nspod: Nspod, bb: Path, code: int) -> None:
    script = f"{GUEST}; exit {code}" if code == 3 else f"echo out-{code}; exit {code}"
    started = time.monotonic()
    result = nspod(*KVM, str(bb), "--exec=/bin/sh", "--", "-c", script, timeout=180)
    took = time.monotonic() - started
    print(f"kvm run, launch to exit: {took:.2f} s")
    assert result.returncode == code, (result.stdout, result.stderr)
    [pod] = pods(nspod)
    uuid = str(pod["uuid"])
    assert pod["state"] == "exited"
    assert nspod.status(uuid)["app-bb"] == str(code)
    assert nspod.status(uuid).get("stage1") == "kvm"
    logs = nspod("logs", uuid).stdout
    if code == 3:
        host_release = os.uname().release
        assert "kernel=" in logs and f"kernel={host_release}" not in logs, logs
        assert "cloud-amd64" in logs.split("kernel=")[1].splitlines()[0]
        assert "Linux version 6.1" in logs and host_release not in logs
    else:
        assert f"out-{code}" in logs, logs
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert pods(nspod) == []
    assert not kvm_units().strip(), kvm_units()
