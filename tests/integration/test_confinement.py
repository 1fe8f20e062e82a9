"""What an app can reach of the host, seen from inside by the static probe (it opens files for writing
but never writes, so a failing check changes nothing on the host)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod, nspod  # noqa: F401  (fixture)

pytestmark = pytest.mark.systemd

# Host kernel settings an app must never be able to change (issue #9, defect 0): core_pattern alone
# would let it run a program of its choice as root on the host at the next crash anywhere.
KERNEL_KNOBS = (
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/vm/drop_caches",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sysrq-trigger",
    "/sys/kernel/uevent_helper",
    "/sys/fs/cgroup/cgroup.procs",
)


def probe_lines(stdout: str) -> list[str]:
    return [line.split(": ", 1)[-1] for line in stdout.splitlines()]


def test_a_root_app_cannot_open_kernel_settings_for_writing(
    nspod: Nspod,  # noqa: F811
    probe: Path,
    tmp_path: Path,
) -> None:
    image = probe_image(tmp_path / "knobs", probe, ["openw", *KERNEL_KNOBS], notify=False)
    ran = nspod("run", str(image))
    assert ran.returncode == 0, ran.stderr
    seen = {
        line.split()[1]: line.split()[2] for line in probe_lines(ran.stdout) if line.startswith("openw ")
    }
    assert set(seen) == set(KERNEL_KNOBS), ran.stdout
    for path, outcome in seen.items():
        assert outcome in ("EROFS", "EACCES", "EPERM", "ENOENT"), f"{path} is writable: {ran.stdout}"
    # the point is the refusal, not a missing file: the core knobs exist and are refused
    assert seen["/proc/sys/kernel/core_pattern"] in ("EROFS", "EACCES"), seen
    assert seen["/proc/sys/vm/drop_caches"] in ("EROFS", "EACCES"), seen


def test_a_root_app_cannot_remount_its_way_back(
    nspod: Nspod,  # noqa: F811
    probe: Path,
    tmp_path: Path,
) -> None:
    # read-only mounts hold only while the app cannot mount: CAP_SYS_ADMIN is not in its bounding set
    image = probe_image(tmp_path / "caps", probe, ["report"], notify=False)
    ran = nspod("run", str(image))
    assert ran.returncode == 0, ran.stderr
    capeff = next(line.split()[1] for line in probe_lines(ran.stdout) if line.startswith("capeff "))
    cap_sys_admin, cap_sys_module, cap_sys_rawio = 21, 16, 17
    for bit in (cap_sys_admin, cap_sys_module, cap_sys_rawio):
        assert not int(capeff, 16) & (1 << bit), capeff
    mounts = [line for line in probe_lines(ran.stdout) if line.startswith("mount ")]
    assert "mount /proc/sys" in mounts, mounts  # the read-only bind over the fresh /proc's sys
