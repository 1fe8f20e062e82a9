"""A kvm pod's network, as data: how the guest gets the link CNI gave the pod (kata containers'
"tcfilter" model, written for nspod). No I/O here; stage1/kvm/net.py runs what these describe.

The pod's network namespace is made and joined exactly as an nspawn pod's (stage1/network.py):
CNI puts ``eth<i>`` there with the pod's address and routes. Beside each ``eth<i>`` stage1 adds a
tap device ``tap<i>``, and two tc rules on ingress qdiscs redirect every frame from one to the
other (mirred), so the namespace is a cable between the host's end of the link and the guest's
virtio-net. The guest's NIC takes ``eth<i>``'s MAC, address, MTU and routes; the namespace's
``eth<i>`` gives its addresses up (the guest answers for them now). So the guest has the pod's IP,
its routes, its DNS, its forwarded ports and the metadata service exactly as an nspawn pod, and
every rule the host holds for the pod (the loopback guard, masquerading, port forwarding) applies
unchanged. QEMU opens the taps by name, so it runs in the pod's namespace, which also leaves it
no way to the host's network. The taps and tc rules live and die with the namespace: the pod's
teardown script (``ip netns delete``) removes them however QEMU ended, ``kill -9`` included.

No vhost-net (absent on some hosts; ``vhost=on`` aborts QEMU there): the taps are plain.
``--net=host`` is refused for kvm pods: a VM has a kernel and a network stack of its own and
cannot share the host's; slirp would hand it the host's stack through QEMU (the host's loopback
included, as 10.0.2.2), which is the opposite of what the flag promises.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from typing import Any

from stage1.abi import Error

# the guest kernel's modules for virtio-net, in load order after virtio_pci (the initramfs loads them)
GUEST_MODULES = ("failover", "net_failover", "virtio_net")
GUEST_SCRIPT = "nspod/net/up"  # in the pod's tree: the guest's link configuration
GUEST_UNIT = "nspod-network.service"  # runs it before any app starts
INGRESS = "ffff:"


class HostNetworkRefused(Error):
    kind = "invalid-argument"  # stage0/errors.py ErrorKind
    hint = "use --net=default (or another CNI net), or --net=none for loopback alone"


@dataclass(frozen=True, slots=True)
class Address:
    """One address of the pod on a link, as ``ip`` writes it (``10.1.2.3/24``)."""

    cidr: str

    @property
    def version(self) -> int:
        return ipaddress.ip_interface(self.cidr).version


@dataclass(frozen=True, slots=True)
class Route:
    """One route over a link: ``dst`` (``default`` or a prefix), its next hop, if any."""

    dst: str
    gateway: str = ""
    scope: str = ""
    metric: int = 0
    source: str = ""
    version: int = 4

    def words(self, dev: str) -> list[str]:
        words = ["-6"] if self.version == 6 else []
        # replace: a plugin may have swapped the prefix route the address makes for one of its own
        # (ptp: the subnet via the gateway), which the guest's kernel makes again from the address
        words += ["route", "replace", self.dst]
        words += ["via", self.gateway] if self.gateway else []
        words += ["dev", dev]
        words += ["scope", self.scope] if self.scope else []
        words += ["metric", str(self.metric)] if self.metric else []
        words += ["src", self.source] if self.source else []
        return words


@dataclass(frozen=True, slots=True)
class GuestLink:
    """One network of the pod as the guest gets it: the namespace's ``ifname`` (``eth<i>``, the
    guest's name too), the tap beside it, and what the guest's NIC takes over."""

    index: int
    mac: str
    mtu: int
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]

    @property
    def ifname(self) -> str:
        return f"eth{self.index}"

    @property
    def tap(self) -> str:
        return f"tap{self.index}"


def _route(raw: dict[str, Any], version: int) -> Route | None:
    if raw.get("protocol") == "kernel" or raw.get("type", "unicast") != "unicast":
        return None  # the guest's kernel makes these itself from the addresses
    dst = str(raw.get("dst", ""))
    if not dst or (version == 6 and dst.startswith("fe80:")):
        return None
    return Route(
        dst=dst,
        gateway=str(raw.get("gateway", "")),
        scope=str(raw.get("scope", "")) if raw.get("scope") not in (None, "global", "universe") else "",
        metric=int(raw.get("metric", 0) or 0),
        source=str(raw.get("prefsrc", "")),
        version=version,
    )


def guest_links(links: list[dict[str, Any]], routes4: list[dict[str, Any]],
                routes6: list[dict[str, Any]], count: int) -> tuple[GuestLink, ...]:  # fmt: skip
    """The guest's links from what the pod's namespace holds once CNI is done (``ip -j addr``,
    ``ip -j route`` of each family): ``eth0``…``eth<count-1>``, each with its MAC, MTU, global
    addresses and the routes over it (link-scope routes first: a gateway must be reachable when
    its route is added)."""
    by_name = {str(link.get("ifname")): link for link in links}
    made = []
    for index in range(count):
        name = f"eth{index}"
        link = by_name.get(name)
        if link is None:
            raise Error(f"the pod's network namespace has no {name} after CNI's ADD")
        addresses = tuple(
            Address(f"{a['local']}/{a['prefixlen']}")
            for a in link.get("addr_info", ())
            if a.get("family") in ("inet", "inet6") and a.get("scope", "global") == "global"
        )
        found = [
            route
            for version, table in ((4, routes4), (6, routes6))
            for raw in table
            if raw.get("dev") == name and (route := _route(raw, version)) is not None
        ]
        found.sort(key=lambda r: bool(r.gateway))  # stable: link routes first, else CNI's order
        made.append(
            GuestLink(index, str(link["address"]), int(link.get("mtu", 1500)), addresses, tuple(found))
        )
    return tuple(made)


def netns_batch(links: tuple[GuestLink, ...]) -> str:
    """``ip -batch`` lines run in the pod's namespace: each tap made (persistent, so QEMU opens it
    by name) with its link's MTU and up; the link's addresses given up to the guest."""
    lines = []
    for link in links:
        lines += [
            f"tuntap add dev {link.tap} mode tap",
            f"link set dev {link.tap} mtu {link.mtu} up",
            f"address flush dev {link.ifname}",
        ]
    return "".join(line + "\n" for line in lines)


def tc_batch(links: tuple[GuestLink, ...]) -> str:
    """``tc -batch`` lines run in the pod's namespace: every frame in on one side of a link goes
    out of the other (u32 matching all, as matchall may be missing from a host's kernel)."""
    lines = []
    for link in links:
        for inbound, outbound in ((link.ifname, link.tap), (link.tap, link.ifname)):
            lines += [
                f"qdisc add dev {inbound} ingress",
                f"filter add dev {inbound} parent {INGRESS} protocol all u32 match u32 0 0"
                f" action mirred egress redirect dev {outbound}",
            ]
    return "".join(line + "\n" for line in lines)


def netdev_args(links: tuple[GuestLink, ...]) -> list[str]:
    """QEMU's arguments for the guest's NICs: one virtio-net per link on its tap, with the
    link's MAC; none at all for a pod on loopback alone (``-nodefaults`` adds no NIC)."""
    args = []
    for link in links:
        netdev = f"tap,id=net{link.index},ifname={link.tap},script=no,downscript=no,vhost=off"
        device = f"virtio-net-pci,netdev=net{link.index},mac={link.mac}"
        args += ["-netdev", netdev, "-device", device]
    return args


def guest_script(links: tuple[GuestLink, ...]) -> str:
    """The guest's link configuration, a POSIX shell script of ``ip`` commands (iproute2's or
    busybox's): each NIC found by its MAC and named as in the namespace (two steps, so that
    swapped names cannot clash), then its MTU, addresses and routes. Fails on the first error."""
    lines = ["#!/bin/sh", "# nspod: the pod's links in the guest (stage1/kvm/netplan.py)", "set -e"]
    lines += [
        'named() { for d in /sys/class/net/*; do [ "$(cat $d/address)" = "$1" ] && echo ${d##*/} && return;'
        ' done; echo "nspod: no NIC with MAC $1" >&2; return 1; }',
        "ip link set dev lo up",
    ]
    for link in links:
        temp = f"nspod{link.index}"
        lines += [f"n=$(named {link.mac})", f'[ "$n" = {temp} ] || ip link set dev "$n" name {temp}']
    for link in links:
        lines.append(f"ip link set dev nspod{link.index} name {link.ifname}")
        lines.append(f"ip link set dev {link.ifname} mtu {link.mtu} up")
        for address in link.addresses:
            nodad = " nodad" if address.version == 6 else ""
            lines.append(f"ip address add {address.cidr} dev {link.ifname}{nodad}")
    for link in links:
        lines += [shlex.join(["ip", *route.words(link.ifname)]) for route in link.routes]
    # one echo to each gateway, where ping exists: both ends learn the other's MAC now, not in
    # the app's first connection (an address resolution costs tens of ms under emulation)
    gateways = sorted({r.gateway for link in links for r in link.routes if r.gateway and r.version == 4})
    lines += [
        f"! command -v ping >/dev/null || ping -c 1 -W 1 {gateway} >/dev/null 2>&1 || :"
        for gateway in gateways
    ]
    return "\n".join(lines) + "\n"


def guest_unit(script_path: str = "/" + GUEST_SCRIPT) -> str:
    """The guest's unit running the script, early: before the network is online and before any
    app (the pod's target orders apps after it); the pod fails if it fails."""
    return (
        "[Unit]\n"
        "Description=The pod's network links\n"
        "DefaultDependencies=no\n"
        "Before=network.target network-online.target sysinit.target\n"
        "Wants=network.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        "Environment=PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
        f"ExecStart=/bin/sh {script_path}\n"
    )


def check_network(networks: tuple[object, ...] | None) -> None:
    """A kvm pod has a network namespace of its own (``()``: loopback alone); refuse the host's."""
    if networks is None:
        raise HostNetworkRefused(
            "--net=host: a kvm pod is a virtual machine with a kernel of its own, which cannot share "
            "the host's network stack"
        )
