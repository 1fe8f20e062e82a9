"""The kvm flavor's plans (issue #25): QEMU's and virtiofsd's command lines and what the guest gets
beyond an nspawn pod's tree, as golden files; acceleration detected from the CPU's flags; the VM
sized by the isolators; the initramfs a valid newc archive; the pod's code from the control port."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from stage1.abi import AppSpec, PodPaths, PodSpec
from stage1.kvm import assets, guest, qemu, vm
from stage1.kvm.pod import pod_service
from stage1.transient import render_properties
from stage1.units import tree
from tests.conftest import assert_golden

UUID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0"
SPEC = PodSpec(
    uuid=UUID,
    machine="web",
    hostname="web",
    apps=(
        AppSpec(
            name="server", rootfs="/l/s", exec=("/bin/server",), memory_max=200 * qemu.MIB, cpu_quota=150
        ),
        AppSpec(name="sidecar", rootfs="/l/c", exec=("/bin/sleep", "60"), memory_max=100 * qemu.MIB),
    ),
)
PATHS = PodPaths(f"/var/lib/nspod/pods/run/{UUID}")


def plan(accel: qemu.Accel = qemu.Accel.TCG) -> qemu.VmPlan:
    return vm.plan(SPEC, PATHS, accel, host_cpus=2)


def test_qemu_argv_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(assets.ENV, "/usr/lib/nspod/kvm")
    tcg, kvm = qemu.qemu_argv(plan()), qemu.qemu_argv(plan(qemu.Accel.KVM))
    text = "### tcg\n" + shlex.join(tcg) + "\n### kvm\n" + shlex.join(kvm) + "\n"
    text += "### virtiofsd\n" + shlex.join(qemu.virtiofsd_argv(plan())) + "\n"
    assert_golden("kvm-qemu-argv.txt", text)
    assert "-nic" in tcg and tcg[tcg.index("-nic") + 1] == "none"  # no network until kvmnet adds one


def test_nics_replace_none() -> None:
    nics = (qemu.Nic("tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off", "virtio-net-pci,netdev=n0"),)
    argv = qemu.qemu_argv(dataclasses.replace(plan(), nics=nics))
    assert "-nic" not in argv and argv[argv.index("-netdev") + 1].startswith("tap,id=n0")


def test_guest_tree_golden() -> None:
    """What a VM's tree has beyond an nspawn pod's (the apps' units are the same, the hidden kernel
    paths are the guest kernel's)."""
    base = tree(SPEC, hidden=guest.GUEST_HIDDEN)
    kvm = guest.guest_tree(SPEC, systemd_version=252)
    extra = {p: f for p, f in kvm.files.items() if base.files.get(p) != f}
    text = "".join(f"### {p} (mode {f.mode:o})\n{f.content}\n" for p, f in sorted(extra.items()))
    links = {p: t for p, t in kvm.links.items() if base.links.get(p) != t}
    text += "### links\n" + "".join(f"{p} -> {t}\n" for p, t in sorted(links.items()))
    text += "### cmdline\n" + " ".join(guest.kernel_cmdline(SPEC)) + "\n"
    text += "### init\n" + assets.init_script()
    assert_golden("kvm-guest.txt", text)
    assert kvm.dirs == base.dirs


CPU = "processor\t: 0\nflags\t\t: fpu vme de pse {}\n"


@pytest.mark.parametrize(
    ("flags", "dev_kvm", "accel"),
    [
        ("vmx sse", True, qemu.Accel.KVM),
        ("svm sse", True, qemu.Accel.KVM),
        ("vmx sse", False, qemu.Accel.TCG),  # no /dev/kvm to use it
        ("sse hypervisor", True, qemu.Accel.TCG),  # /dev/kvm without VT-x/AMD-V (PVM): not for stock kernels
        ("sse", False, qemu.Accel.TCG),
    ],
)
def test_accel_is_detected(flags: str, dev_kvm: bool, accel: qemu.Accel) -> None:
    assert qemu.detect_accel(CPU.format(flags), dev_kvm) is accel


def test_the_isolators_size_the_vm() -> None:
    assert qemu.vm_memory(None) == qemu.MEMORY_DEFAULT
    assert qemu.vm_memory(64 * qemu.MIB) == qemu.MEMORY_FLOOR  # never under the floor
    assert qemu.vm_memory(300 * qemu.MIB + 1) == 301 * qemu.MIB
    assert plan().memory == 300 * qemu.MIB and plan().cpus == 2
    assert qemu.vm_cpus(None, 8) == 1 and qemu.vm_cpus(250, 8) == 3 and qemu.vm_cpus(900, 2) == 2


def test_exit_code_from_the_control_port() -> None:
    assert guest.exit_code("") is None
    assert guest.exit_code("exit 3\n") == 3
    assert guest.exit_code("noise\nexit 0\n") == 0
    assert guest.exit_code("exit three\n") is None


def test_the_payload_is_found_by_its_magic() -> None:
    image = b"MZ" + b"\0" * 100 + b"\x28\xb5\x2f\xfd" + b"rest"
    assert assets.payload(image) == (102, ("zstd", "-dcq"))
    assert assets.payload(b"no kernel here") is None


@pytest.mark.skipif(not shutil.which("cpio"), reason="no cpio")
def test_the_initramfs_is_a_newc_archive(tmp_path: Path) -> None:
    archive = assets.cpio(assets.initramfs_entries(b"\x7fELF busybox", {"virtio": b"module"}))
    listed = subprocess.run(["cpio", "-t"], input=archive, capture_output=True, check=True).stdout.decode()
    assert listed.split() == [
        *("bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys"),
        *("bin/busybox", "bin/sh", "lib/modules/virtio.ko", "init"),
    ]
    subprocess.run(["cpio", "-id"], input=archive, cwd=tmp_path, capture_output=True, check=True)
    assert (tmp_path / "init").read_text().startswith("#!/bin/busybox sh")
    assert (tmp_path / "bin/sh").readlink() == Path("busybox")
    assert (tmp_path / "lib/modules/virtio.ko").read_bytes() == b"module"


def test_pod_service_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    """``nspod run``'s host unit: its main process becomes QEMU; a stop powers the guest off first."""
    monkeypatch.delenv(assets.ENV, raising=False)
    service = pod_service(SPEC, PATHS.root, "/usr/bin/python3")
    assert_golden("kvm-pod-service.txt", render_properties(service.properties()))
