"""A small guest on a kvm pod's network, for tests of that network alone (stage1/kvm/net.py): the
pod's namespace made and joined by stage1 as a kvm pod's is, QEMU started as the kvm flavor's unit
runs it (a transient unit, QEMU in the pod's namespace, the network's teardown its ExecStopPost=),
booting the host's cloud kernel with a busybox initramfs that loads virtio-net, applies the
guest script stage1 wrote (stage1/kvm/netplan.py) and runs a test's script. Its serial console is
a file the test reads; what the guest says the test judges, or the host's own servers do.

The kvm flavor's own boot (systemd from the pod's tree) is not needed to test the network: the
guest's links, routes, tap and redirects are the same whatever runs above them.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import subprocess
import time
import uuid as uuids
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stage1.abi import PodPaths, PodSpec
from stage1.kvm import net
from stage1.kvm.netplan import GUEST_MODULES

KERNEL_VERSION = "6.1.0-57-cloud-amd64"  # Debian 12's cloud kernel (reference/kvm.md)
KERNEL = Path(f"/boot/vmlinuz-{KERNEL_VERSION}")
MODULES = Path(f"/lib/modules/{KERNEL_VERSION}/kernel")
QEMU = "/usr/bin/qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
VIRTIO = ("virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci")

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in {modules}; do insmod /lib/modules/$m.ko; done
echo GUEST-BOOTED
if sh /nspod/net/up; then echo GUEST-NET-OK; else echo GUEST-NET-FAILED; fi
sh /test.sh 2>&1
echo GUEST-DONE
while :; do sleep 3600; done
"""


def missing() -> str:
    """What this host lacks to boot the guest ("" if nothing)."""
    for path in (KERNEL, MODULES, Path(QEMU), Path(BUSYBOX), Path("/dev/net/tun")):
        if not path.exists():
            return str(path)
    return ""


def _cpio(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A newc cpio archive of ``files`` (path → content, mode), directories made as needed."""
    out = io.BytesIO()
    entries: dict[str, tuple[bytes, int]] = {}
    for path, (data, mode) in sorted(files.items()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), (b"", 0o040755))
        entries[path] = (data, 0o100000 | mode)
    for number, (path, (data, mode)) in enumerate([*entries.items(), ("TRAILER!!!", (b"", 0))], start=1):
        name = path.encode() + b"\0"
        fields = [number, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0]
        out.write(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        out.write(b"\0" * (-(110 + len(name)) % 4) + data + b"\0" * (-len(data) % 4))
    return out.getvalue()


def initramfs(script: str, guest_files: dict[str, str], extra: dict[str, Path]) -> bytes:
    modules = (*VIRTIO, *GUEST_MODULES)
    paths = {m.name.removesuffix(".ko"): m for m in MODULES.rglob("*.ko")}
    files = {
        "init": (INIT.format(modules=" ".join(modules)).encode(), 0o755),
        "bin/busybox": (Path(BUSYBOX).read_bytes(), 0o755),
        "test.sh": (script.encode(), 0o755),
        **{f"lib/modules/{m}.ko": (paths[m].read_bytes(), 0o644) for m in modules},
        **{path: (text.encode(), 0o755) for path, text in guest_files.items()},
        **{path: (source.read_bytes(), 0o755) for path, source in extra.items()},
    }
    for directory in ("proc", "sys", "dev"):
        files[f"{directory}/.keep"] = (b"", 0o644)
    return gzip.compress(_cpio(files), compresslevel=1)


@dataclass
class Guest:
    spec: PodSpec
    unit: str
    console: Path
    pod_dir: str

    def said(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_for(self, marker: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.said()
            if marker in text:
                return text
            if "GUEST-NET-FAILED" in text or "Kernel panic" in text:
                break
            time.sleep(0.2)
        raise AssertionError(f"the guest did not say {marker!r}:\n{self.said()[-3000:]}")

    def kill(self) -> None:
        """kill -9 of QEMU, as an operator's or the OOM killer's, then the unit's ExecStopPost=."""
        subprocess.run(["systemctl", "kill", "--signal=SIGKILL", self.unit], check=True)
        for _ in range(300):
            state = subprocess.run(["systemctl", "is-active", self.unit], capture_output=True, text=True)
            if state.stdout.strip() in ("inactive", "failed", "unknown", ""):
                return
            time.sleep(0.1)


def pod_spec(networks: tuple[object, ...] | None, ports: tuple[object, ...] = ()) -> PodSpec:
    uuid = str(uuids.uuid4())
    return PodSpec(uuid=uuid, machine=f"kvmnet-{uuid[:8]}", hostname="kvmnet", apps=(),
                   networks=networks, ports=ports, mds_register=None)  # type: ignore[arg-type]  # fmt: skip


@contextlib.contextmanager
def booted(
    directory: Path, spec: PodSpec, script: str, extra: dict[str, Path] | None = None
) -> Iterator[Guest]:
    """The pod's network joined as a kvm pod's, and the guest running ``script`` on it."""
    if reason := missing():
        pytest.skip(f"no {reason} on this host")
    paths = PodPaths(str(directory / "pod"))
    os.makedirs(paths.root, exist_ok=True)
    unit = f"nspod-{spec.machine}.service"
    spec, links = net.join(spec, paths, unit)
    guest = Guest(spec, unit, directory / "console.log", paths.root)
    try:
        files = {path: f.content for path, f in net.guest_files(spec, links).items()}
        if os.path.exists(paths.mds_url):  # the pod's metadata token, for a script to use
            with open(paths.mds_url) as file:
                files["token"] = file.read().strip().rsplit("/", 1)[-1] + "\n"
        (directory / "initrd.img").write_bytes(initramfs(script, files, extra or {}))
        from stage1.cni import down_path

        argv = [
            "systemd-run", f"--unit={unit}", "--collect", "--quiet", "--service-type=simple",
            f"--property=ExecStopPost=/bin/sh {down_path(spec.uuid)}",
            *net.command_prefix(spec), QEMU, "-M", "q35", "-accel", "tcg", "-cpu", "max", "-m", "160M",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{guest.console}", *net.netdev_args(links),
            "-kernel", str(KERNEL), "-initrd", str(directory / "initrd.img"),
            "-append", "console=ttyS0 panic=-1 quiet",
        ]  # fmt: skip
        subprocess.run(argv, check=True)
        yield guest
    finally:
        subprocess.run(["systemctl", "kill", "--signal=SIGKILL", unit], capture_output=True)
        subprocess.run(["systemctl", "stop", unit], capture_output=True)
        from stage1 import network

        network.down(spec.uuid)
        shutil.rmtree(paths.root, ignore_errors=True)
