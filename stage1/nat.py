"""The pods' address translation as nftables text; stage1/network.py runs ``nft`` with it.

Laid out for what the kernel makes cheap: a commit that adds costs ~1 ms, one that removes rules
(or fails) waits for an RCU grace period, 10–20 ms measured here, on every pod's way out.

* Masquerading (ptp's and bridge's ``ipMasq``) is per subnet, not per pod: the shared table
  ``inet nspod`` gets one chain per masquerading subnet when the first pod joins it, and keeps it
  (as docker keeps a network's MASQUERADE rule), so a pod on ``default`` that forwards no port
  changes no rule at all, coming or going.
* Loopback stays on the host (the CVE-2020-8558 pattern): forwarding 127.0.0.1 needs
  ``route_localnet=1`` on the pod's host interface (the host's connection leaves there with its
  loopback source until masqueraded, and the answer comes back to 127.0.0.1), which also lets a pod
  send frames to 127.x or from it. The shared table's ``guard`` chain drops what arrives on any
  interface but ``lo`` already addressed to or from loopback, before conntrack and NAT: no such
  packet is ever legitimate (RFC 1122 martians), while the host's own forwarded connections only
  get loopback addresses back by de-NAT, after it. Every pod with a network makes sure of it
  (a bridge keeps the route_localnet set for one pod's port); kept, like the masquerading chains.
* A pod's forwarded ports are a table of its own (``inet nspod_<uuid>``, cni.table_name), which
  its teardown deletes as a whole.
"""

from __future__ import annotations

import ipaddress
import re

from stage1.abi import PodSpec
from stage1.cni import MASQUERADING_PLUGINS, Attachment, forward_target, masquerades, plugin_type, table_name

SHARED_TABLE = "nspod"
GUARD = "guard"
LOOPBACK = {"ip": "127.0.0.0/8", "ip6": "{ ::1, ::ffff:127.0.0.0/104 }"}
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


def masquerade_subnets(spec: PodSpec, attachments: tuple[Attachment, ...]) -> tuple[Subnet, ...]:
    """The subnets whose traffic nspod masquerades for this pod: those of its ptp and bridge
    networks configured with ipMasq, as their plugins' results give them."""
    assert spec.networks is not None
    subnets: list[Subnet] = []
    for net, attachment in zip(spec.networks, attachments, strict=True):
        if not masquerades(net) or plugin_type(net) not in MASQUERADING_PLUGINS:
            continue
        for ip in attachment.result.get("ips", ()):
            subnet = ipaddress.ip_interface(ip["address"]).network
            if subnet not in subnets:
                subnets.append(subnet)
    return tuple(subnets)


def masquerade_chain(subnet: Subnet) -> str:
    """The shared table's chain for one subnet, named by family, address and prefix length."""
    return f"masq{subnet.version}_{int(subnet.network_address):x}_{subnet.prefixlen}"


def shared_chains(listing: str) -> frozenset[str]:
    """The chains in ``nft list table inet nspod``'s output."""
    return frozenset(re.findall(r"^\s*chain (\S+) \{", listing, re.MULTILINE))


def shared_setup(subnets: tuple[Subnet, ...], guard: bool) -> str:
    """An ``nft -f`` batch adding to the shared table what it lacks: the loopback ``guard`` (if
    ``guard``) and the subnets' masquerading: what leaves a subnet, unless for the subnet itself or
    multicast, goes out with the host's address (what the plugins' ipMasq did). ``create chain``
    fails if another pod made it meanwhile, and the batch with it: no rule twice."""
    lines = [
        f"add table inet {SHARED_TABLE}",
        f"add chain inet {SHARED_TABLE} postrouting"
        " { type nat hook postrouting priority 100; policy accept; }",
    ]
    if guard:
        lines.append(
            f"create chain inet {SHARED_TABLE} {GUARD}"
            " { type filter hook prerouting priority -300; policy accept; }"
        )
        lines += [
            f'add rule inet {SHARED_TABLE} {GUARD} iif != "lo" {family} {way} {addresses} counter drop'
            for family, addresses in LOOPBACK.items()
            for way in ("saddr", "daddr")
        ]
    for subnet in subnets:
        family = "ip" if subnet.version == 4 else "ip6"
        chain = masquerade_chain(subnet)
        lines += [
            f"create chain inet {SHARED_TABLE} {chain}",
            f"add rule inet {SHARED_TABLE} {chain} {family} daddr != {subnet}"
            f" {family} daddr != {MULTICAST[subnet.version]} masquerade",
            f"add rule inet {SHARED_TABLE} postrouting {family} saddr {subnet} jump {chain}",
        ]
    return "\n".join(lines) + "\n"


def nft_ruleset(spec: PodSpec, attachments: tuple[Attachment, ...]) -> str:
    """The pod's own table, for its forwarded ports: destination NAT to its address from other
    hosts (prerouting) and from this one (output); source NAT for what comes from 127.0.0.1 so the
    pod can answer it. IPv4 and IPv6, as the pod has addresses of each; ::1 is left to
    cni.loopback_proxies (the kernel routes no ::1 packet off the host)."""
    target = forward_target(spec, attachments)
    addresses = [ipaddress.ip_address(a) for a in target.addresses()] if target else []
    rules = []
    for port in spec.ports:
        for address in addresses:
            family = "ip" if address.version == 4 else "ip6"
            if port.host_ip:
                if ipaddress.ip_address(port.host_ip).version != address.version:
                    continue
                match = f"{family} daddr {port.host_ip}"
            else:  # ::1 cannot be routed to a pod: its proxy answers there (loopback_proxies)
                match = "fib daddr type local" + (" ip6 daddr != ::1" if address.version == 6 else "")
            to = f"{address}:{port.port}" if address.version == 4 else f"[{address}]:{port.port}"
            rules.append(
                f"{match} meta l4proto {port.protocol} th dport {port.host_port} dnat {family} to {to}"
            )
    source = [f"ip saddr 127.0.0.0/8 ip daddr {a} masquerade" for a in addresses if a.version == 4]
    lines = [f"table inet {table_name(spec.uuid)} {{"]
    for chain, hook, priority, body in (
        ("prerouting", "prerouting", -100, rules),
        ("output", "output", -100, rules),
        ("postrouting", "postrouting", 100, source),
    ):
        if not body:
            continue
        lines.append(f"\tchain {chain} {{")
        lines.append(f"\t\ttype nat hook {hook} priority {priority}; policy accept;")
        lines += [f"\t\t{rule}" for rule in body]
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"
