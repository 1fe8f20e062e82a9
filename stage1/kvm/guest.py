"""What a kvm pod's guest boots, as data (pure): the nspawn pod's stage1 tree (stage1/units.py,
the same app units and profile) plus what a VM needs beyond a container, and the guest kernel's
command line.

- The pod's end: the reapers are those of an nspawn pod; the first failing app's ``systemctl exit
  N`` powers a VM off (systemd does "poweroff" where "exit" has no container to leave) with the
  manager's ExitCode set to N. ``nspod-exit.service`` stops after every reaper and writes that code
  to the control port (a file on the host: stage1/kvm/qemu.py), where ``run`` reads it.
- A stop: the host presses Ctrl-Alt-Del (QMP), the guest kernel sends PID 1 SIGINT, and
  ``ctrl-alt-del.target`` is powering off here (not rebooting): every app stops in order.
- No udev in the pod: the control port's device is found through sysfs by its name.
"""

from __future__ import annotations

from stage1.abi import PodSpec
from stage1.kvm.qemu import CTL_PORT
from stage1.unitfile import Entry, render, section
from stage1.units import GENERATORS, Tree, TreeFile, tree

UNITS = "etc/systemd/system"
EXIT_SCRIPT = "nspod/bin/kvm-exit"

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

EXIT = f"""#!/bin/sh
# the manager's exit code (the first failing app's, its reaper's "systemctl exit N") to the host
code=$(/usr/bin/systemctl show --property=ExitCode --value)
for port in /sys/class/virtio-ports/*; do
    [ "$(cat "$port/name" 2>/dev/null)" = {CTL_PORT} ] && echo "exit ${{code:-0}}" > "/dev/${{port##*/}}"
done
exit 0
"""


def exit_unit(spec: PodSpec) -> list[Entry]:
    reapers = " ".join(f"reaper-{app.name}.service" for app in spec.apps)
    return section(
        "Unit",
        ("Description", "Tell the host how the pod ended"),
        ("DefaultDependencies", "no"),
        # started before them, so stopped after them: every status is final by then
        ("Before", f"{reapers} shutdown.service".strip()),
        ("Conflicts", "shutdown.target"),
        ("Before", "shutdown.target"),
    ) + section("Service", ("Type", "oneshot"), ("RemainAfterExit", "yes"), ("ExecStop", "/" + EXIT_SCRIPT))


def guest_tree(spec: PodSpec, *, systemd_version: int) -> Tree:
    """The stage1 tree of an nspawn pod, for a VM."""
    base = tree(spec, systemd_version=systemd_version, hidden=GUEST_HIDDEN)
    files = base.files | {
        EXIT_SCRIPT: TreeFile(EXIT, 0o755),
        f"{UNITS}/nspod-exit.service": TreeFile(render(exit_unit(spec))),
        f"{UNITS}/pod.target.d/kvm.conf": TreeFile(render(section("Unit", ("Wants", "nspod-exit.service")))),
    }
    links = base.links | {
        f"{UNITS}/ctrl-alt-del.target": "/usr/lib/systemd/system/poweroff.target",
        # no hardware for these in the VM, and nothing of the pod needs them
        f"{UNITS}/systemd-udevd.service": "/dev/null",
        f"{UNITS}/systemd-udev-trigger.service": "/dev/null",
    }
    return Tree(files, links, base.dirs, base.programs)


def kernel_cmdline(spec: PodSpec) -> tuple[str, ...]:
    """The guest kernel's: the serial console, a panic ends the VM, systemd quiet with the pod's
    machine ID; ``NAME=value`` words are the environment of the initramfs's init, thus systemd's."""
    return (
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "rw",
        "systemd.show_status=0",
        "systemd.log_level=warning",
        f"systemd.machine_id={spec.uuid.replace('-', '')}",
        f"SYSTEMD_GENERATOR_PATH={GENERATORS}",
    )


def exit_code(ctl: str) -> int | None:
    """The pod's exit code from what the guest wrote to the control port (None: nothing, the VM
    was killed or failed before its end)."""
    code = None
    for line in ctl.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
            code = int(words[1])
    return code
