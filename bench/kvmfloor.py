#!/usr/bin/env python3
"""The kvm row's floor for bench/flavors.py (issue #25): the kvm flavor's own QEMU command line
(stage1/kvm/qemu.py: the same kernel, initramfs, memory, vCPUs, acceleration and virtiofs share
of a prepared pod's tree) booting the guest's systemd straight to power-off: no app, no network,
no machine registered, no unit, no nspod. What a VM costs here before nspod adds anything, as the
nspawn row's floor is a bare nspawn.

    kvmfloor.py POD_DIR     (as root: a mount namespace of its own, virtiofsd, then QEMU)

Its own set-up (this interpreter's start, the tree's binds, virtiofsd's start) is in the floor:
~0.1 s against a boot of seconds under TCG, and what the flavor pays too.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stage1.kvm import host, qemu, vm
from stage1.poddir import load

POWEROFF = "systemd.unit=poweroff.target"


def floor_plan(plan: qemu.VmPlan) -> qemu.VmPlan:
    """The flavor's plan with the guest's systemd sent straight to power-off (pure)."""
    cmdline = tuple(word for word in plan.cmdline if not word.startswith("systemd.unit="))
    return dataclasses.replace(plan, cmdline=(*cmdline, POWEROFF), nics=())


def main(pod_dir: str) -> None:
    spec, paths = load(pod_dir)
    vm.prepare(spec, paths)
    plan = floor_plan(vm.plan(spec, paths, qemu.host_accel(), os.cpu_count() or 1))
    open(plan.ctl_path, "w").close()
    vm.mount_tree(spec, paths)  # (in this process's own mount namespace: gone with QEMU)
    host.start_virtiofsd(qemu.virtiofsd_argv(plan), plan.vfs_socket)
    argv = qemu.qemu_argv(plan)
    sys.stdout.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1])
