"""The kvm flavor's boot assets, made at install time (``make install``, the .deb's postinst) from
what Debian installed: an uncompressed ``vmlinux`` taken out of the cloud kernel's bzImage (under
software emulation the decompressor alone costs a boot ~0.5 s; where no decompressor is at hand
the bzImage itself is kept, which boots too) and a small initramfs of busybox-static and the
kernel's virtio modules, whose init mounts the pod's tree shared by virtiofsd and switches into
the host's systemd on it.

``python -m stage1.kvm.assets [DIR]`` (idempotent: nothing is rewritten when the kernel and
busybox are those it was made from). Planning (module order, init, the cpio archive) is pure.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from dataclasses import dataclass

from stage1.atomic import write_atomic
from stage1.kvm.host import decompress

DEFAULT_DIR = "/var/lib/nspod/kvm"
ENV = "NSPOD_KVM_ASSETS"  # another directory (tests build their own)
KERNEL = "vmlinux"
INITRD = "initrd.img"
STAMP = "made-from"
BUSYBOX = "/bin/busybox"
ROOT_TAG = "nspod-root"  # virtiofsd's tag of the pod's tree

# load order matters: each after what it needs (no modprobe, no depmod in the initramfs)
MODULES = (
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "fs/fuse/fuse",
    "fs/fuse/virtiofs",
    "drivers/char/virtio_console",
    # the pod's NIC (kvmnet): loaded where present, harmless where no device uses it
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
)

# (magic, decompressor argv reading stdin) of the compressions a bzImage may carry
PAYLOADS = (
    (b"\x02\x21\x4c\x18", ("lz4", "-dc")),
    (b"\x28\xb5\x2f\xfd", ("zstd", "-dcq")),
    (b"\xfd7zXZ\x00", ("xz", "-dc")),
    (b"\x1f\x8b\x08", ("gzip", "-dc")),
)
ELF = b"\x7fELF"


def assets_dir() -> str:
    return os.environ.get(ENV) or DEFAULT_DIR


def init_script(tag: str = ROOT_TAG) -> str:
    """The initramfs's /init: modules, the shared tree as the new root, then systemd as PID 1. A
    failure powers the VM off at once (panic=-1 and -no-reboot end QEMU): no shell for anyone."""
    loads = "\n".join(f"insmod /lib/modules/{os.path.basename(m)}.ko 2>/dev/null" for m in MODULES)
    return f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
{loads}
if ! mount -t virtiofs {tag} /newroot; then
    echo "nspod: cannot mount the pod's tree ({tag})" > /dev/console
    poweroff -f
fi
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /usr/lib/systemd/systemd "$@"
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One member of a cpio archive: a directory (``data`` None), a file or a symlink."""

    name: str
    mode: int
    data: bytes | None = None
    link: str = ""


def cpio(entries: list[Entry]) -> bytes:
    """A newc ("070701") archive, as the kernel unpacks an initramfs (pure)."""
    out = bytearray()

    def member(ino: int, name: str, mode: int, body: bytes) -> None:
        fields = (ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(name) + 1, 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0")
        out.extend(b"\0" * (-len(out) % 4) + body)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, entry in enumerate(entries, start=1):
        if entry.link:
            member(ino, entry.name, 0o120777, entry.link.encode())
        elif entry.data is None:
            member(ino, entry.name, 0o040000 | entry.mode, b"")
        else:
            member(ino, entry.name, 0o100000 | entry.mode, entry.data)
    member(0, "TRAILER!!!", 0, b"")
    return bytes(out)


def initramfs_entries(busybox: bytes, modules: dict[str, bytes], tag: str = ROOT_TAG) -> list[Entry]:
    """The initramfs's members: busybox, the modules found (by base name), /init."""
    dirs = [Entry(d, 0o755) for d in ("bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys")]
    mods = [Entry(f"lib/modules/{name}.ko", 0o644, data) for name, data in sorted(modules.items())]
    return [
        *dirs,
        Entry("bin/busybox", 0o755, busybox),
        Entry("bin/sh", 0o777, link="busybox"),
        *mods,
        Entry("init", 0o755, init_script(tag).encode()),
    ]


def payload(image: bytes) -> tuple[int, tuple[str, ...]] | None:
    """Where the compressed kernel starts in a bzImage and what decompresses it (the first magic
    found): the same search the kernel tree's extract-vmlinux makes."""
    found = [(image.find(magic), argv) for magic, argv in PAYLOADS if image.find(magic) > 0]
    return min(found) if found else None


def extract_vmlinux(image: bytes) -> bytes | None:
    """The uncompressed ELF kernel, or None where no decompressor here gives one."""
    where = payload(image)
    while where is not None:
        offset, argv = where
        if shutil.which(argv[0]):
            kernel = decompress(argv, image[offset:])
            if kernel[:4] == ELF:
                return kernel
        rest = payload(image[offset + 1 :])
        where = None if rest is None else (offset + 1 + rest[0], rest[1])
    return None


def cloud_kernel() -> tuple[str, str]:
    """(bzImage, modules directory) of the newest installed kernel that has virtiofs as a module
    (Debian's cloud kernel; its generic one too)."""
    for image in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        release = os.path.basename(image).removeprefix("vmlinuz-")
        modules = f"/lib/modules/{release}/kernel"
        if os.path.exists(f"{modules}/fs/fuse/virtiofs.ko"):
            return image, modules
    raise SystemExit("nspod: no kernel with virtiofs installed (install linux-image-cloud-amd64)")


def build(out: str) -> bool:
    """Make the assets in ``out`` unless they are those of this kernel and busybox; True if made."""
    image, modules_dir = cloud_kernel()
    stamp = f"{image} {os.stat(image).st_mtime_ns} {os.stat(BUSYBOX).st_mtime_ns}\n"
    try:
        with open(os.path.join(out, STAMP)) as file:
            if file.read() == stamp:
                return False
    except FileNotFoundError:
        pass
    os.makedirs(out, mode=0o755, exist_ok=True)
    with open(image, "rb") as file:
        bz = file.read()
    kernel = extract_vmlinux(bz) or bz
    modules = {}
    for module in MODULES:
        path = f"{modules_dir}/{module}.ko"
        if os.path.exists(path):
            with open(path, "rb") as file:
                modules[os.path.basename(module)] = file.read()
    with open(BUSYBOX, "rb") as file:
        initrd = cpio(initramfs_entries(file.read(), modules))
    write_atomic(os.path.join(out, KERNEL), kernel, mode=0o644, sync=False)
    write_atomic(os.path.join(out, INITRD), initrd, mode=0o644, sync=False)
    write_atomic(os.path.join(out, STAMP), stamp.encode(), mode=0o644, sync=False)
    return True


def main(argv: list[str]) -> int:
    out = argv[0] if argv else assets_dir()
    if not os.path.exists(BUSYBOX):
        print("nspod: no busybox for the kvm flavor's initramfs (install busybox-static)", file=sys.stderr)
        return 1
    made = build(out)
    print(f"nspod: kvm assets {'made' if made else 'up to date'} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
