"""Issue #25, item 3 (kvm): from inside an app of a VM pod, the host's pod directory and the host's
/proc are unreachable. programs/kvmreach.c tries a host file (in the pod's data directory) by every
path shape, a host process's command line in /proc, a mount of the tree's virtiofs tag, the VM's
control ports and the guest PID 1's root (the tree virtiofsd shares); it gets only its control."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.integration.test_kvm import kvm_assets

pytestmark = [pytest.mark.systemd, pytest.mark.usefixtures("kvm_assets")]
TOKEN = "nspod-kvm-token"  # the host process has TOKEN-host (kvmreach.c)
__all__ = ["kvm_assets"]


@pytest.fixture(scope="module")
def host_process() -> Iterator[None]:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"{TOKEN}-host"])
    yield
    sleeper.kill()
    sleeper.wait()


def test_an_app_of_a_vm_reaches_nothing_of_the_host(
    tmp_path: Path, programs: Mapping[str, Path], host_process: None
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    marker = data / "marker"
    marker.write_text("host secret\n")
    image = attack_image(
        tmp_path, ["/bin/kvmreach", str(marker), TOKEN], programs={"kvmreach": programs["kvmreach"]}
    )
    ran = Nspod(data)("--stage1=kvm", "run", str(image), timeout=180)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    # each line as the console shows it: "APP: TRY RESULT"
    lines = [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()]
    tries = dict(line.split(" ", 1) for line in lines if line.count(" ") == 1)
    assert tries.get("control:self") == "ESCAPED", ran.stdout  # the probe ran and can open its own
    escaped = [t for t, r in tries.items() if r == "ESCAPED" and t != "control:self"]
    assert not escaped, ran.stdout
    assert {t for t in tries if t.startswith("marker:")} >= {"marker:plain", "marker:/proc/1/root"}
    assert tries["hostproc"] == "ENOENT" and tries["mount:virtiofs"] != "ESCAPED"
