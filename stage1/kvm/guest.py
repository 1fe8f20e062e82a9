"""What a kvm pod's guest boots, as data (pure): the nspawn pod's stage1 tree (stage1/units.py,
the same app units and profile) plus what a VM needs beyond a container, and the guest kernel's
command line.

- The pod's end: the reapers are those of an nspawn pod; the first failing app's ``systemctl exit
  N`` writes N to the control port (a file on the host: stage1/kvm/qemu.py, read by ``run``) and
  powers the guest off in order (:data:`SYSTEMCTL`); the last app's end powers it off too.
- A stop: the host presses Ctrl-Alt-Del (QMP), the guest kernel sends PID 1 SIGINT, and
  ``ctrl-alt-del.target`` is powering off here (not rebooting): every app stops in order.
- No udev in the pod: the control port's device is found through sysfs by its name.
"""

from __future__ import annotations

from stage1.abi import PodSpec
from stage1.kvm.qemu import CTL_PORT
from stage1.unitfile import render, section
from stage1.units import GENERATORS, Tree, TreeFile, tree

UNITS = "etc/systemd/system"
SYSTEMCTL_WRAPPER = "/nspod/bin/kvm-systemctl"
REAL_SYSTEMCTL = "/nspod/bin/systemctl"  # the host's, bound here (stage1/kvm/vm.py)

# The kernel paths hidden from apps that the guest kernel (Debian's cloud kernel on q35) has: a
# mount over a missing one would fail the app's start (stage1/app_unit.py HIDDEN)
GUEST_HIDDEN = (
    "/proc/interrupts",
    "/proc/kallsyms",
    "/proc/kcore",
    "/proc/key-users",
    "/proc/keys",
    "/proc/kpagecgroup",
    "/proc/kpagecount",
    "/proc/kpageflags",
    "/proc/slabinfo",
    "/proc/timer_list",
    "/proc/vmallocinfo",
    "/sys/kernel/vmcoreinfo",
    "/proc/acpi",
    "/sys/firmware",
    "/sys/module",
    "/sys/power",
)

# A failing app's reaper says "systemctl exit N" (stage1/scripts/reaper.sh): there is no container
# to leave here, and a system manager refuses an exit code outside one. The host binds this over
# the guest's /usr/bin/systemctl (the real one at /nspod/bin/systemctl): N goes to the host over
# the control port, then the guest powers off in order. Every other call passes through.
SYSTEMCTL = f"""#!/bin/sh
if [ "$1" = exit ]; then
    for port in /sys/class/virtio-ports/*; do
        [ "$(cat "$port/name" 2>/dev/null)" = {CTL_PORT} ] && echo "exit ${{2:-0}}" > "/dev/${{port##*/}}"
    done
    exec {REAL_SYSTEMCTL} poweroff
fi
exec {REAL_SYSTEMCTL} "$@"
"""


NO_REPORT = "#!/bin/sh\n# a VM's apps have no host manager to report to (stage1/kvm/guest.py)\nexit 0\n"


# Beyond an nspawn pod's masks (stage1/units.py MASKED): what a container skips by its conditions
# and a VM would run, each a unit start costing ~0.5 s under TCG, none of use to a pod (no module
# loading, no udev, no kernel debug or config file systems, no TPM, no partitions)
VM_MASKED = (
    "kmod-static-nodes.service",
    "modprobe@.service",
    "dev-hugepages.mount",
    "sys-fs-fuse-connections.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "systemd-pcrphase-sysinit.service",
    "systemd-pcrphase.service",
    "systemd-repart.service",
    "systemd-journald-audit.socket",
    "systemd-initctl.socket",
    "systemd-udevd.service",
    "systemd-udev-trigger.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    # the host's tmpfiles.d for a machine (/var, /srv, /home, logs): ~1.8 s under TCG before any app
    # (sysinit.target), where the tree stage1 writes has what a pod uses, as an nspawn pod's has
    "systemd-tmpfiles-setup.service",
)


def guest_tree(spec: PodSpec, *, systemd_version: int) -> Tree:
    """The stage1 tree of an nspawn pod, for a VM."""
    base = tree(spec, systemd_version=systemd_version, hidden=GUEST_HIDDEN)
    files = base.files | {
        SYSTEMCTL_WRAPPER.lstrip("/"): TreeFile(SYSTEMCTL, 0o755),
        REAL_SYSTEMCTL.lstrip("/"): TreeFile("", 0o755),  # where the host's is bound
        # the apps' readiness reports go to the host manager's socket in an nspawn pod: there is
        # none in a VM (its unit said READY=1 as QEMU started), and a Python start is ~1 s under TCG
        "nspod/bin/report": TreeFile(NO_REPORT, 0o755),
        # an orderly power-off when the last app ended: "exit-force" has no container to leave, and
        # where there is none systemd powers off at once, stopping no unit
        f"{UNITS}/shutdown.service.d/kvm.conf": TreeFile(
            render(section("Unit", ("SuccessAction", "poweroff")))
        ),
    }
    links = base.links | {
        f"{UNITS}/ctrl-alt-del.target": "/usr/lib/systemd/system/poweroff.target",
        **{f"{UNITS}/{unit}": "/dev/null" for unit in VM_MASKED},
    }
    return Tree(files, links, base.dirs, base.programs)


def kernel_cmdline(spec: PodSpec, *, debug: bool = False) -> tuple[str, ...]:
    """The guest kernel's: the serial console, a panic ends the VM, systemd quiet with the pod's
    machine ID (``debug``: the kernel's and systemd's messages, each unit's start and stop on the
    console); ``NAME=value`` words are the environment of the initramfs's init, thus systemd's."""
    return (
        "console=ttyS0",
        "panic=-1",
        *(() if debug else ("quiet",)),
        "rw",
        f"systemd.show_status={1 if debug else 0}",
        f"systemd.log_level={'info' if debug else 'warning'}",
        f"systemd.machine_id={spec.uuid.replace('-', '')}",
        f"SYSTEMD_GENERATOR_PATH={GENERATORS}",
    )


def is_code(word: str) -> bool:
    """An exit code a process can have, in ASCII digits ('²'.isdigit(), and int refuses it)."""
    return word.isascii() and word.isdigit() and len(word) <= 3 and int(word) <= 255


def exit_code(ctl: str) -> int | None:
    """The pod's exit code from what the guest wrote to the control port (None: nothing, the VM
    was killed or failed before its end)."""
    code = None
    for line in ctl.splitlines():
        words = line.split()
        # the guest's bytes: any of them (its kernel is the boundary)
        if len(words) == 2 and words[0] == "exit" and is_code(words[1]):
            code = int(words[1])
    return code
