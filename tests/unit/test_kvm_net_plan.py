"""A kvm pod's network as data (issue #25, stage1/kvm/netplan.py): the guest's links read from
what CNI left in the pod's namespace (``ip -json`` of a ptp link with IPv4 and IPv6, captured in a
test host: tests/data/kvm-net), the taps and redirects made beside them, QEMU's NICs, the guest's
own configuration script, and --net=host refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stage1.abi import AppSpec, Error, NetworkSpec, PodSpec
from stage1.kvm.net import guest_files, links_json, nics
from stage1.kvm.netplan import (
    GUEST_SCRIPT,
    GUEST_UNIT,
    Address,
    GuestLink,
    HostNetworkRefused,
    Route,
    check_network,
    guest_links,
    guest_script,
    guest_unit,
    netdev_args,
    netns_batch,
    tc_batch,
)
from tests.conftest import REPO, assert_golden

DATA = REPO / "tests/data/kvm-net"


def captured() -> tuple[GuestLink, ...]:
    def load(name: str) -> list[dict[str, object]]:
        return json.loads((DATA / name).read_text())  # type: ignore[no-any-return]

    return guest_links(load("addresses.json"), load("routes4.json"), load("routes6.json"), 1)


def test_the_guest_takes_the_links_mac_mtu_addresses_and_routes() -> None:
    (link,) = captured()
    assert (link.ifname, link.tap, link.mac, link.mtu) == ("eth0", "tap0", "62:f2:3a:08:cb:03", 1500)
    assert link.addresses == (Address("172.16.28.5/24"), Address("fd00::5/64"))
    # the kernel's own route (fd00::/64, made from the address) is left to the guest's kernel;
    # the gateway's link route comes before the routes through it
    assert link.routes == (
        Route("172.16.28.1", scope="link"),
        Route("default", "172.16.28.1"),
        Route("172.16.28.0/24", "172.16.28.1", source="172.16.28.5"),
        Route("default", "fd00::1", metric=1024, version=6),
    )


def test_a_link_cni_did_not_make_is_an_error() -> None:
    with pytest.raises(Error, match="no eth1 after CNI's ADD"):
        guest_links(json.loads((DATA / "addresses.json").read_text()), [], [], 2)


def test_loopback_alone_has_no_tap_no_rule_no_nic() -> None:
    assert guest_links([], [], [], 0) == ()
    assert (netns_batch(()), tc_batch(()), netdev_args(())) == ("", "", [])
    assert "ip link set dev lo up" in guest_script(())


def test_every_frame_is_redirected_both_ways() -> None:
    rules = [line for line in tc_batch(captured()).splitlines() if "mirred" in line]
    assert [r.split()[3] + ">" + r.split()[-1] for r in rules] == ["eth0>tap0", "tap0>eth0"]
    assert all("protocol all u32 match u32 0 0" in r for r in rules)  # every frame, any protocol


def test_qemu_opens_the_tap_without_vhost_and_its_nic_has_the_links_mac() -> None:
    assert netdev_args(captured()) == [
        "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=off",
        "-device", "virtio-net-pci,netdev=net0,mac=62:f2:3a:08:cb:03",
    ]  # fmt: skip


def test_the_namespace_gives_its_addresses_up_to_the_guest() -> None:
    assert "address flush dev eth0" in netns_batch(captured()).splitlines()


def two_links() -> tuple[GuestLink, ...]:
    return (
        GuestLink(0, "02:00:00:00:00:0a", 1500, (Address("10.1.0.2/24"),), (Route("default", "10.1.0.1"),)),
        GuestLink(1, "02:00:00:00:00:0b", 9000, (Address("10.2.0.2/16"),), ()),
    )


def test_golden_plan_for_two_links() -> None:
    links = two_links()
    text = "\n".join([
        "### ip -netns NS -batch -", netns_batch(links),
        "### tc -netns NS -batch -", tc_batch(links),
        "### qemu", " ".join(netdev_args(links)), "",
        f"### {GUEST_SCRIPT}", guest_script(links),
        f"### etc/systemd/system/{GUEST_UNIT}", guest_unit(),
    ])  # fmt: skip
    assert_golden("kvm-net-plan.txt", text)


def test_the_guest_script_is_valid_shell_and_renames_by_mac_in_two_steps() -> None:
    script = guest_script(two_links())
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    renames = [line for line in script.splitlines() if " name " in line]
    assert renames[-2:] == ["ip link set dev nspod0 name eth0", "ip link set dev nspod1 name eth1"]


def test_the_guest_files_order_every_app_after_the_network_and_their_record() -> None:
    spec = PodSpec(
        uuid="u", machine="m", hostname="h", apps=(AppSpec(name="web", rootfs="/r", exec=("/x",)),)
    )
    files = guest_files(spec, two_links())
    assert files[GUEST_SCRIPT].mode == 0o755 and "10.2.0.2/16" in files[GUEST_SCRIPT].content
    needs = files["etc/systemd/system/web.service.d/network.conf"].content
    assert f"Requires={GUEST_UNIT}" in needs and f"After={GUEST_UNIT}" in needs
    assert f"Wants={GUEST_UNIT}" in files["etc/systemd/system/pod.target.d/network.conf"].content
    assert json.loads(links_json(two_links()))[1] == {
        "index": 1, "mac": "02:00:00:00:00:0b", "mtu": 9000, "addresses": ["10.2.0.2/16"], "routes": [],
    }  # fmt: skip


def test_the_vms_nics_are_the_netdev_pairs() -> None:
    tap = "tap,id=net{0},ifname=tap{0},script=no,downscript=no,vhost=off"
    nic = "virtio-net-pci,netdev=net{0},mac=02:00:00:00:00:0{1}"
    assert [(n.netdev, n.device) for n in nics(two_links())] == [
        (tap.format(0), nic.format(0, "a")),
        (tap.format(1), nic.format(1, "b")),
    ]
    assert nics(()) == ()


def test_host_network_is_refused_none_and_nets_are_not() -> None:
    with pytest.raises(HostNetworkRefused, match="cannot share the host's network stack"):
        check_network(None)
    check_network(())
    check_network((NetworkSpec(name="default", config="{}"),))


def test_recorded_links_read_back(tmp_path: Path) -> None:
    from stage1.abi import PodPaths
    from stage1.kvm.net import LINKS_FILE, recorded_links

    (tmp_path / LINKS_FILE).write_text(links_json(captured()))
    assert recorded_links(PodPaths(str(tmp_path))) == captured()
    assert recorded_links(PodPaths(str(tmp_path / "none"))) == ()


def test_stage0_refuses_a_kvm_pod_on_the_hosts_network_before_anything_is_made() -> None:
    from stage0.errors import InvalidArgumentError
    from stage0.pods.flavor import check_request
    from stage0.pods.requests import PodRequest

    with pytest.raises(InvalidArgumentError, match="cannot share the host's network stack"):
        check_request("kvm", PodRequest(apps=(), nets=("host",)))
    for nets in ((), ("none",), ("default",)):
        check_request("kvm", PodRequest(apps=(), nets=nets))
