"""The rest of the profile, read from inside by the static probe (issue #11, items 1 and 2): no
mknod of a device but the pseudo-devices and no mount, seccomp isolators with their wildcards and
errno, and namespaced sysctls set for the pod alone. The probe undoes at once whatever it was let
do, inside the app's own root; it never opens a device node."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.test_confinement import probe_lines
from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd

SHMMAX = "/proc/sys/kernel/shmmax"


def seccomp(mode: str, *calls: str, errno: str | None = None) -> list[dict[str, object]]:
    value: dict[str, object] = {"set": list(calls), **({"errno": errno} if errno else {})}
    return [{"name": f"os/linux/seccomp-{mode}-set", "value": value}]


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, dict[str, str]]:
    """kind → {probe key: last word}, each kind a pod of its own, run once for the module."""
    base = tmp_path_factory.mktemp("isolators")
    nspod = Nspod(base / "data")
    sysctl: list[dict[str, object]] = [{"name": "os/unix/sysctl", "value": {"kernel.shmmax": "12345678"}}]
    pods: dict[str, tuple[list[str], list[dict[str, object]] | None, list[str]]] = {
        "root": (["makes"], None, []),
        "allow-list": (["sysfs"], seccomp("retain", "@docker/default-whitelist", errno="ENOSYS"), []),
        "deny-list": (["sysfs"], seccomp("remove", "sysfs", errno="ENOTSUP"), []),
        "allow-all": (["sysfs"], seccomp("retain", "@appc.io/all"), []),
        "systemd-group": (["sysfs"], seccomp("remove", "@systemd/obsolete", errno="EINVAL"), []),
        "sysctl": (["read", SHMMAX], sysctl, []),
        "flag": (["sysfs"], None, ["--seccomp=mode=remove,errno=ENXIO,ptrace"]),
    }
    found: dict[str, dict[str, str]] = {}
    for kind, (args, isolators, flags) in pods.items():
        image = probe_image(base / kind, probe, [], notify=False, isolators=isolators)
        ran = nspod("run", str(image), "--exec=/probe", *flags, "--", *args)
        assert ran.returncode == 0, (kind, ran.stderr)
        found[kind] = {line.split()[0]: line.split()[-1] for line in probe_lines(ran.stdout) if line.split()}
    return found


def test_no_app_makes_a_block_device(seen: dict[str, dict[str, str]]) -> None:
    # root, with CAP_MKNOD: refused by the pod's device policy (a disk's node would open the disk)
    assert seen["root"]["mknod-block"] == "EPERM", seen["root"]


def test_no_app_makes_a_char_device_beyond_the_pseudo_devices(seen: dict[str, dict[str, str]]) -> None:
    assert seen["root"]["mknod-char"] == "EPERM", seen["root"]  # /dev/mem's numbers


def test_no_app_mounts(seen: dict[str, dict[str, str]]) -> None:
    assert seen["root"]["mount-tmpfs"] == "EPERM", seen["root"]


def test_an_allow_list_answers_with_its_errno(seen: dict[str, dict[str, str]]) -> None:
    # Docker's list leaves out sysfs(2) and ptrace(2); the isolator asked for ENOSYS
    assert (seen["allow-list"]["sysfs"], seen["allow-list"]["ptrace"]) == ("ENOSYS", "ENOSYS")


def test_a_deny_list_replaces_the_default_filter(seen: dict[str, dict[str, str]]) -> None:
    # sysfs(2) denied, ptrace(2) no longer (the kernel's own ESRCH): the default filter is gone
    assert (seen["deny-list"]["sysfs"], seen["deny-list"]["ptrace"]) == ("ENOTSUP", "ESRCH")


def test_a_systemd_group_wildcard_with_its_errno(seen: dict[str, dict[str, str]]) -> None:
    assert (seen["systemd-group"]["sysfs"], seen["systemd-group"]["ptrace"]) == ("EINVAL", "ESRCH")


def test_retaining_every_call_is_no_filter(seen: dict[str, dict[str, str]]) -> None:
    # ptrace(2) reaches the kernel (ESRCH); sysfs(2) meets nspawn's container filter alone (EPERM)
    assert (seen["allow-all"]["ptrace"], seen["allow-all"]["sysfs"]) == ("ESRCH", "EPERM")


def test_the_seccomp_flag_reaches_the_app(seen: dict[str, dict[str, str]]) -> None:
    # ptrace(2) with the flag's errno; sysfs(2) meets nspawn's container filter alone (EPERM)
    assert (seen["flag"]["ptrace"], seen["flag"]["sysfs"]) == ("ENXIO", "EPERM"), seen["flag"]


def test_a_namespaced_sysctl_is_the_pods_alone(seen: dict[str, dict[str, str]]) -> None:
    assert seen["sysctl"]["read"] == "12345678", seen["sysctl"]
    assert Path(SHMMAX).read_text().strip() != "12345678"  # the host's own is untouched


def test_an_selinux_context_without_selinux_is_a_warning(tmp_path: Path, probe: Path) -> None:
    context = {"user": "system_u", "role": "system_r", "type": "svirt_lxc_net_t", "level": "s0"}
    isolators: list[dict[str, object]] = [{"name": "os/linux/selinux-context", "value": context}]
    image = probe_image(tmp_path / "img", probe, ["sysfs"], notify=False, isolators=isolators)
    ran = Nspod(tmp_path / "data")("run", str(image))
    if Path("/sys/fs/selinux/enforce").exists():
        pytest.skip("SELinux is enabled here")
    assert ran.returncode == 0, ran.stderr
    assert "warning: SELinux is not enabled; the context of probe is not applied" in ran.stderr


def test_a_read_only_root_keeps_its_writable_volumes(tmp_path: Path, probe: Path) -> None:
    # an image of the probe alone (no /proc, /sys or /dev of its own), which --overlay-ro failed
    image = probe_image(tmp_path / "img", probe, [], notify=False)
    ran = Nspod(tmp_path / "data")(
        "run", "--volume=data,kind=empty", str(image), "--readonly-rootfs",
        "--mount=volume=data,target=/data", "--exec=/probe", "--", "create", "/new", "/data/new",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    created = {
        line.split()[1]: line.split()[2] for line in probe_lines(ran.stdout) if line.startswith("create")
    }
    assert created == {"/new": "EROFS", "/data/new": "OK"}, ran.stdout


def test_an_app_retaining_a_capability_nspawn_leaves_out_gets_it(tmp_path: Path, probe: Path) -> None:
    image = probe_image(tmp_path / "img", probe, [], notify=False)
    ran = Nspod(tmp_path / "data")(
        "run", str(image), "--caps-retain=CAP_NET_ADMIN", "--exec=/probe", "--", "report"
    )
    assert ran.returncode == 0, ran.stderr
    capbnd = next(line.split()[1] for line in probe_lines(ran.stdout) if line.startswith("capbnd "))
    assert int(capbnd, 16) == 1 << 12, capbnd  # CAP_NET_ADMIN alone


def test_the_pod_keeps_only_what_it_and_its_apps_need(tmp_path: Path, probe: Path) -> None:
    image = probe_image(tmp_path / "img", probe, ["sleep", "600"], notify=False)
    nspod = Nspod(tmp_path / "data")
    ran = nspod("run", "--detach", "--name=capped", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        leader = subprocess.run(["machinectl", "show", "capped", "-p", "Leader", "--value"],
                                capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        status = Path(f"/proc/{leader}/status").read_text()
    finally:
        nspod("stop", "capped")
    capbnd = int(status.split("CapBnd:")[1].split()[0], 16)
    cap_sys_admin, cap_sys_nice, cap_sys_tty_config, cap_linux_immutable = 21, 23, 26, 9
    assert capbnd & (1 << cap_sys_admin), hex(capbnd)  # the pod's systemd mounts for its apps
    for bit in (cap_sys_nice, cap_sys_tty_config, cap_linux_immutable):
        assert not capbnd & (1 << bit), hex(capbnd)


def test_dns_and_hosts_entries_reach_every_app(tmp_path: Path, probe: Path) -> None:
    image = probe_image(tmp_path / "img", probe, [], notify=False)  # no /etc of its own at all
    ran = Nspod(tmp_path / "data")(
        "run", "--dns=10.0.0.53", "--dns-search=example.com", "--hosts-entry=10.0.0.7=db", str(image),
        "--exec=/probe", "--", "read", "/etc/resolv.conf", "/etc/hosts",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    read = {
        line.split()[1]: line.split(None, 2)[2]
        for line in probe_lines(ran.stdout)
        if line.startswith("read ")
    }
    assert read == {"/etc/resolv.conf": "# Generated by nspod run", "/etc/hosts": "127.0.0.1 localhost"}, (
        read
    )
