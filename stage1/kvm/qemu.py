"""A kvm pod's VM as data (pure): the frozen :class:`VmPlan`, and the command lines of QEMU and of
the virtiofsd that shares the pod's tree with it. kvmnet fills ``nics`` (each a ``-netdev``/
``-device`` pair); without any the VM has no network device at all.

Acceleration is detected, never guessed: ``-enable-kvm -cpu host`` only where the CPU offers
hardware virtualization (``vmx``/``svm``) and /dev/kvm exists. A /dev/kvm without either (PVM
here) runs only specially built guests: a stock kernel fails under it, so TCG is used instead.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

QEMU = "/usr/bin/qemu-system-x86_64"
VIRTIOFSD = "/usr/lib/qemu/virtiofsd"
MIB = 1024 * 1024
MEMORY_FLOOR = 128 * MIB  # 96 MiB boots systemd and an app, 64 MiB panics: room above that
MEMORY_DEFAULT = 256 * MIB
CTL_PORT = "nspod.ctl"  # the guest's /dev/virtio-ports/nspod.ctl: the pod's end (stage1/kvm/guest.py)


class Accel(enum.StrEnum):
    KVM = "kvm"
    TCG = "tcg"


def detect_accel(cpuinfo: str, dev_kvm: bool) -> Accel:
    """KVM only with hardware virtualization in the CPU's flags and a /dev/kvm to use it."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags") and dev_kvm:
            flags = set(line.partition(":")[2].split())
            if flags & {"vmx", "svm"}:
                return Accel.KVM
    return Accel.TCG


def host_accel() -> Accel:
    with open("/proc/cpuinfo") as file:
        return detect_accel(file.read(), os.path.exists("/dev/kvm"))


def vm_memory(memory_max: int | None) -> int:
    """The guest's memory from the pod's memory isolator (its apps' sum), never under the floor;
    whole MiB, as QEMU takes it."""
    wanted = memory_max if memory_max else MEMORY_DEFAULT
    return max(MEMORY_FLOOR, -(-wanted // MIB) * MIB)


def vm_cpus(cpu_quota: int | None, host_cpus: int) -> int:
    """vCPUs from the cpu isolator (percent of one CPU, summed over apps), 1 to the host's count."""
    if not cpu_quota:
        return 1
    return max(1, min(host_cpus, -(-cpu_quota // 100)))


@dataclass(frozen=True, slots=True)
class Nic:
    """One network device (kvmnet): QEMU's ``-netdev`` and ``-device`` values."""

    netdev: str
    device: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VmPlan:
    name: str  # QEMU's -name (the pod's machine name)
    uuid: str
    kernel: str
    initrd: str
    memory: int  # bytes
    cpus: int
    accel: Accel
    vfs_socket: str  # virtiofsd's vhost-user socket
    qmp_socket: str  # QEMU's monitor (QMP): how a stop reaches the guest
    ctl_path: str  # where the control port's bytes land (a file QEMU appends to)
    root: str  # the tree virtiofsd shares
    tag: str
    cmdline: tuple[str, ...]  # the kernel's
    nics: tuple[Nic, ...] = ()


def qemu_argv(plan: VmPlan, qemu: str = QEMU) -> list[str]:
    """QEMU's command line: q35, virtio-pci, the shared root, the serial console on stdout (the
    unit's journal), the control port into a file, every guest end an end of QEMU."""
    mib = plan.memory // MIB
    accel = ["-enable-kvm", "-cpu", "host"] if plan.accel is Accel.KVM else ["-accel", "tcg", "-cpu", "max"]
    nics = [a for nic in plan.nics for a in ("-netdev", nic.netdev, "-device", nic.device)]
    return [
        qemu,
        "-name", f"{plan.name},process=nspod-kvm-{plan.name}",
        "-uuid", plan.uuid,
        "-M", "q35",
        *accel,
        "-m", f"{mib}M",
        "-smp", str(plan.cpus),
        # virtiofs needs the guest's memory shared with virtiofsd
        "-object", f"memory-backend-memfd,id=mem,size={mib}M,share=on",
        "-numa", "node,memdev=mem",
        "-chardev", f"socket,id=vfs,path={plan.vfs_socket}",
        "-device", f"vhost-user-fs-pci,chardev=vfs,tag={plan.tag}",
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=ctl,path={plan.ctl_path}",
        "-device", f"virtserialport,chardev=ctl,name={CTL_PORT}",
        *(nics or ["-nic", "none"]),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-chardev", "stdio,id=console,signal=off",
        "-serial", "chardev:console",
        "-qmp", f"unix:{plan.qmp_socket},server=on,wait=off",
        "-no-reboot",
        "-kernel", plan.kernel,
        "-initrd", plan.initrd,
        "-append", " ".join(plan.cmdline),
    ]  # fmt: skip


def virtiofsd_argv(plan: VmPlan, virtiofsd: str = VIRTIOFSD) -> list[str]:
    """virtiofsd for this VM alone (it ends when QEMU disconnects). cache=always: the tree changes
    only through the guest, and it halves a TCG boot (20 s to 9 s here)."""
    return [
        virtiofsd,
        f"--socket-path={plan.vfs_socket}",
        "-o", f"source={plan.root}",
        "-o", "cache=always",
        "-o", "log_level=err",  # its per-queue chatter (warnings too) is no news in the pod's journal
        "--thread-pool-size=0",
    ]  # fmt: skip
