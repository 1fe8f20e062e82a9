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
    """The pods' units (not the metadata service, which a kvm pod on a network registers with)."""
    listed = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*.service")
    return "\n".join(line for line in listed.splitlines() if not line.startswith("nspod-metadata"))


GUEST = "; ".join(
    [
        "echo kernel=$(uname -r)",
        "cat /proc/version",
        "echo pid1=$(cat /proc/1/comm)",
    ]
)


@pytest.mark.parametrize("code", [3, 0, 7])
def test_exit_codes_pass_through_and_the_kernel_is_the_guests(nspod: Nspod, bb: Path, code: int) -> None:
    """3: the app sees the guest's kernel; 7: the first failing app ends the pod while another
    still runs (stopped in order: 143)."""
    script = f"{GUEST}; exit {code}" if code == 3 else f"echo out-{code}; exit {code}"
    other = (
        [str(bb), "--name=other", "--exec=/bin/sh", "--", "-c", "exec sleep 600", "---"] if code == 7 else []
    )
    started = time.monotonic()
    result = nspod(*KVM, *other, str(bb), "--exec=/bin/sh", "--", "-c", script, timeout=180)
    took = time.monotonic() - started
    print(f"kvm run, launch to exit: {took:.2f} s")
    assert result.returncode == code, (result.stdout, result.stderr)
    [pod] = pods(nspod)
    uuid = str(pod["uuid"])
    assert pod["state"] == "exited"
    assert nspod.status(uuid)["app-bb"] == str(code)
    assert nspod.status(uuid).get("stage1") == "kvm"
    if code == 7:
        assert nspod.status(uuid)["app-other"] == "143", nspod.status(uuid)
    logs = nspod("logs", uuid).stdout
    # the code came over the control port (the guest's own account), not from the status files
    [ctl] = list(nspod.data.glob(f"pods/*/{uuid}/kvm-ctl"))
    said = f"exit {code}\n" if code else ""  # no app failed: nothing to say, the VM powered off
    assert ctl.read_text() == said, sh("journalctl", "-o", "cat", f"POD_UUID={uuid}")
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


def wait_for(check: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.2)


def qemu_pid(unit: str) -> int:
    """The VM's QEMU: the child of the unit's main process that waits for it with the pod's code."""
    main = prop(unit, "MainPID")
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    [pid] = [int(c) for c in children if "qemu-system" in Path(f"/proc/{c}/exe").resolve().name]
    return pid


def test_a_detached_vm_is_a_machine_and_stops_in_order(nspod: Nspod, bb: Path) -> None:
    started = nspod(
        *KVM, "--detach", str(bb), "--exec=/bin/sh", "--", "-c", "echo up-and-running; exec sleep 600"
    )
    assert started.returncode == 0, started.stderr
    [pod] = pods(nspod)
    uuid, unit = str(pod["uuid"]), str(pod["unit"])
    assert pod["state"] == "running"
    machines = sh("machinectl", "list", "--no-legend")
    assert "vm" in machines and "nspod" in machines, machines
    [machine] = [line.split()[0] for line in machines.splitlines() if " vm " in f" {line} "]
    leader = sh("machinectl", "show", "--property=Leader", "--value", machine).strip()
    assert int(leader) == qemu_pid(unit), leader  # machined's leader is QEMU
    status = nspod("status", uuid)
    assert status.returncode == 0 and "stage1=kvm" in status.stdout, status.stdout + status.stderr
    entered = nspod("enter", uuid, "--", "/bin/true")  # not built for kvm: said in one line and a hint
    assert entered.returncode == 254 and "not built for kvm" in entered.stderr, entered.stderr
    wait_for(lambda: "up-and-running" in nspod("logs", uuid).stdout)
    assert "up-and-running" in nspod("logs", uuid).stdout
    began = time.monotonic()
    stopped = nspod("stop", uuid, timeout=180)
    print(f"kvm stop: {time.monotonic() - began:.2f} s")
    assert stopped.returncode == 0, stopped.stderr
    [pod] = pods(nspod)
    assert pod["state"] == "exited"
    # the guest powered off in order: the app was stopped by its systemd (SIGTERM: 143), not killed
    assert nspod.status(uuid)["app-bb"] == "143", nspod.status(uuid)
    assert f"nspod-{uuid}" not in sh("ip", "netns")  # its network (netns, tap, redirects) went with it
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert pods(nspod) == [] and not kvm_units().strip()


def test_kill_9_of_qemu_leaves_nothing_after_gc(nspod: Nspod, bb: Path) -> None:
    started = nspod(*KVM, "--detach", str(bb), "--exec=/bin/sh", "--", "-c", "exec sleep 600")
    assert started.returncode == 0, started.stderr
    [pod] = pods(nspod)
    uuid, unit = str(pod["uuid"]), str(pod["unit"])
    assert "virtiofsd" in sh("ps", "-eo", "args")
    os.kill(qemu_pid(unit), signal.SIGKILL)
    wait_for(lambda: pods(nspod)[0]["state"] == "exited", 30)
    assert pods(nspod)[0]["state"] == "exited"
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert pods(nspod) == []
    assert "virtiofsd" not in sh("ps", "-eo", "args")
    assert str(nspod.data) not in Path("/proc/self/mountinfo").read_text()
    assert not kvm_units().strip(), kvm_units()
    assert not os.path.exists(f"/run/nspod/kvm/{uuid}")
    assert sh("machinectl", "list", "--no-legend").strip() == ""


def test_pod_unit_with_stage1_kvm(host: Host, bb: Path, kvm_assets: Path) -> None:
    host.pod_file(
        "vm1",
        f"""
stage1 = "kvm"
[[app]]
image = "{bb}"
exec = "/bin/sh"
args = ["-c", "echo vm-is-up; exec sleep 300"]
""",
    )
    dropin = UNIT_DIR / "pod@vm1.service.d"
    dropin.mkdir(parents=True, exist_ok=True)
    (dropin / "assets.conf").write_text(f"[Service]\nEnvironment={assets.ENV}={kvm_assets}\n")
    subprocess.run(["systemctl", "daemon-reload"], check=True)
    try:
        started = subprocess.run(
            ["systemctl", "start", "pod@vm1"], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr + sh("journalctl", "-u", "pod@vm1", "--no-pager")
        assert prop("pod@vm1.service", "ActiveState") == "active"
        wait_for(lambda: "vm-is-up" in sh("journalctl", "-u", "pod@vm1", "-o", "cat"))
        assert "vm-is-up" in sh("journalctl", "-u", "pod@vm1", "-o", "cat")
        [pod] = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
        assert pod["state"] == "running"
        stopped = subprocess.run(
            ["systemctl", "stop", "pod@vm1"], capture_output=True, text=True, timeout=180
        )
        assert stopped.returncode == 0
        journal = sh("journalctl", "-u", "pod@vm1", "-o", "cat")
        assert "terminating on signal" not in journal, journal  # powered off, not killed
        [pod] = json.loads(host.nspod("list", "--full", "--format", "json").stdout)
        assert pod["state"] == "exited"
    finally:
        (dropin / "assets.conf").unlink()
        dropin.rmdir()
        subprocess.run(["systemctl", "daemon-reload"], check=True)
