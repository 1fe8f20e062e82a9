"""Issue #25 (kvm): the VM's wires to the host are the guest's, not its apps'. programs/kvmport.c,
an app of a kvm pod, opens for writing the control port (where the guest reports the pod's exit
code), the serial console (the host's journal and ``nspod run``'s output), hvc0, /dev/console and
/dev/kmsg: by the app's /dev nodes, the /dev/virtio-ports name, and nodes of its own (mknod from the
numbers /sys/class/virtio-ports and /sys/class/tty give). Where one opens it forges ``exit 0`` and
floods. None opens, and the pod's code is the app's own 3. In the same VM, programs/chrootesc.c
(test_chroot_escape.py) finds no way out of the app's root in the shared tree either. One VM boot
(~10 s under TCG, ~60 s the test)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.integration.test_kvm import kvm_assets

pytestmark = [pytest.mark.systemd, pytest.mark.usefixtures("kvm_assets")]
__all__ = ["kvm_assets"]


def test_an_app_of_a_vm_speaks_on_none_of_its_wires(tmp_path: Path, programs: Mapping[str, Path]) -> None:
    # one VM for two probes: the chroot escape first (its image marker), then the wires
    image = attack_image(
        tmp_path,
        ["/bin/sh", "-c", "/bin/chrootesc; exec /bin/kvmport"],
        programs={"kvmport": programs["kvmport"], "chrootesc": programs["chrootesc"]},
        files={"/chrootesc-app": ""},
    )
    ran = Nspod(tmp_path / "data")("--stage1=kvm", "run", str(image), timeout=180)
    print(ran.stdout)  # every try, for a reviewer (pytest -rP)
    lines = [line.split(": ", 1)[-1] for line in ran.stdout.splitlines()]
    tries = dict(line.split(" ", 1) for line in lines if line.count(" ") == 1)
    assert tries.get("done") == "3", ran.stdout + ran.stderr  # the probe ran to its end
    # its own nodes were made (then refused by the device policy), or mknod itself was refused
    for device in ("vport1p1", "ttyS0"):
        assert f"ownnode:{device}" in tries or tries.get(f"mknod:{device}") == "EPERM", tries
    wires = {t: r for t, r in tries.items() if t.startswith(("dev:", "ownnode:"))}
    assert "dev:virtio-ports/nspod.ctl" in wires and "dev:ttyS0" in wires, tries
    assert [t for t, r in wires.items() if r == "ESCAPED"] == [], ran.stdout
    assert ran.returncode == 3, (ran.returncode, ran.stdout)  # no forged report took the pod's code
    chroot = {t: r for t, r in tries.items() if t.startswith(("climb:", "chroot:"))}
    assert len(chroot) == 6 and "ESCAPED" not in chroot.values(), chroot  # the guest's app stays in
