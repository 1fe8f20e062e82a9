"""A pod's networks, as data: CNI plugin calls, what their results say, the port-forwarding ruleset
and the teardown script. No I/O here; stage1/network.py runs what these describe.

Each pod with networks gets a network namespace of its own (``/run/netns/nspod-<uuid>``, where
``ip netns`` lists it); each network is one CNI plugin call (``ADD``, interface ``eth<i>``), its
result kept in the pod directory (``net.json``). Everything the pod's network holds on the host
is undone by one shell script written before the first ADD (``/run/nspod/net/<uuid>/down``): the
host unit's ExecStopPost= runs it however the pod ends, gc runs it again (idempotent), and a
reboot makes it moot (the namespaces, IPAM leases and rules all live in /run and the kernel).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shlex
from dataclasses import dataclass
from typing import Any

from stage1.abi import NetworkSpec, PodSpec, PortSpec, unit_name
from stage1.transient import ExecCommand, TransientService

NETNS_DIR = "/run/netns"
RUNTIME_DIR = "/run/nspod/net"  # <uuid>/: the teardown script and the configs it needs
PORTS_DIR = RUNTIME_DIR + "/ports"  # one file per forwarded host port: the pod holding it
UNITS_DIR = RUNTIME_DIR + "/unit"  # <unit name> -> ../<uuid>/down, for pod@'s ExecStopPost=
CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's containernetworking-plugins, upstream's
NFT = "/usr/sbin/nft"
IP = "/usr/bin/ip"


def netns_name(uuid: str) -> str:
    return f"nspod-{uuid}"


def netns_path(uuid: str) -> str:
    return f"{NETNS_DIR}/{netns_name(uuid)}"


def runtime_dir(uuid: str) -> str:
    return f"{RUNTIME_DIR}/{uuid}"


def down_path(uuid: str) -> str:
    return f"{runtime_dir(uuid)}/down"


def owner_path(uuid: str) -> str:
    """The record of whose the pod's network is: its nspod's pods directory (stage1/orphans.py)."""
    return f"{runtime_dir(uuid)}/pods"


def pods_dir(pod_dir: str) -> str:
    """The pods directory of a pod directory (``$dir/pods/<state>/<uuid>``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(pod_dir)))


def table_name(uuid: str) -> str:
    """The pod's own nftables table (``inet``): its forwarded ports, removed as a whole."""
    return "nspod_" + uuid.replace("-", "")


def ifname(index: int) -> str:
    return f"eth{index}"


def plugin_type(net: NetworkSpec) -> str:
    config = json.loads(net.config)
    return str(config.get("type", ""))


def masquerades(net: NetworkSpec) -> bool:
    return bool(json.loads(net.config).get("ipMasq", False))


MASQUERADING_PLUGINS = ("ptp", "bridge")  # the plugins whose ipMasq nspod does itself


def plugin_config(net: NetworkSpec) -> str:
    """The configuration handed to the plugin. ptp's and bridge's ipMasq is done by nspod, once
    per subnet (stage1/nat.py): the plugins' per-pod iptables rules can only be removed while the
    pod's link exists, and removing a link costs the kernel ~50 ms that deleting the whole
    namespace (which takes the link along, in the background) does not."""
    config = json.loads(net.config)
    if config.get("type") in MASQUERADING_PLUGINS and config.get("ipMasq"):
        return json.dumps({**config, "ipMasq": False})
    return net.config


def plugin_env(command: str, spec: PodSpec, index: int, net: NetworkSpec) -> dict[str, str]:
    """The CNI environment of one plugin call (CNI spec: parameters by environment, config on stdin)."""
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": spec.uuid,
        "CNI_NETNS": netns_path(spec.uuid),
        "CNI_IFNAME": ifname(index),
        "CNI_ARGS": net.args,
        "CNI_PATH": ":".join(CNI_PATH),
    }


@dataclass(frozen=True, slots=True)
class Attachment:
    """One network the pod joined: what its plugin said (CNI 1.0 result)."""

    name: str
    ifname: str
    result: dict[str, Any]

    def addresses(self) -> tuple[str, ...]:
        """The pod's addresses on this network, without prefix length."""
        return tuple(ip["address"].split("/")[0] for ip in self.result.get("ips", ()))

    def gateways(self) -> tuple[str, ...]:
        return tuple(ip["gateway"] for ip in self.result.get("ips", ()) if ip.get("gateway"))

    def host_interfaces(self) -> tuple[str, ...]:
        """The host's end of the pod's link (and a bridge): the interfaces outside any sandbox."""
        return tuple(i["name"] for i in self.result.get("interfaces", ()) if not i.get("sandbox"))

    def nameservers(self) -> tuple[str, ...]:
        return tuple(self.result.get("dns", {}).get("nameservers", ()))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "interface": self.ifname, "result": self.result}


def read_attachments(text: str) -> tuple[Attachment, ...]:
    return tuple(Attachment(a["name"], a["interface"], a["result"]) for a in json.loads(text))


def resolv_conf(attachments: tuple[Attachment, ...]) -> str | None:
    """rkt's default: the DNS settings of the first network that gives any."""
    for attachment in attachments:
        dns = attachment.result.get("dns", {})
        if dns.get("nameservers"):
            lines = [f"# Generated by nspod from network {attachment.name}"]
            lines += [f"nameserver {server}" for server in dns["nameservers"]]
            lines += [f"search {' '.join(dns['search'])}"] if dns.get("search") else []
            lines += [f"options {' '.join(dns['options'])}"] if dns.get("options") else []
            lines += [f"domain {dns['domain']}"] if dns.get("domain") else []
            return "\n".join(lines) + "\n"
    return None


def with_dns(spec: PodSpec, attachments: tuple[Attachment, ...], host_file: bool) -> PodSpec:
    """The spec with rkt's default resolv.conf decided (no --dns given): the first network's DNS,
    else the host's file (``host_file``: the host has one), else one that names no server."""
    if not spec.dns_default:
        return spec
    text = resolv_conf(attachments)
    if text is None and host_file:
        return dataclasses.replace(spec, resolv_conf_from_host=True)
    return dataclasses.replace(
        spec, resolv_conf=text or "# nspod: no network and no host file named a nameserver\n"
    )


def forward_target(spec: PodSpec, attachments: tuple[Attachment, ...]) -> Attachment | None:
    """Where forwarded ports go (rkt's rule): the first network that masquerades, else the last."""
    assert spec.networks is not None
    for net, attachment in zip(spec.networks, attachments, strict=True):
        if masquerades(net):
            return attachment
    return attachments[-1] if attachments else None


TENTATIVE = 0x40  # IFA_F_TENTATIVE in /proc/net/if_inet6: the address is in duplicate address detection


def skip_dad(if_inet6: str, interfaces: frozenset[str]) -> str:
    """``ip -batch`` lines re-adding the host side's tentative IPv6 addresses without duplicate
    address detection: the plugin made that end in the host's namespace, where detection is on,
    and until it ends the host cannot reach the pod (EHOSTUNREACH)."""
    lines = []
    for row in if_inet6.splitlines():
        fields = row.split()
        if len(fields) != 6 or fields[5] not in interfaces or not int(fields[4], 16) & TENTATIVE:
            continue
        address = f"{ipaddress.IPv6Address(int(fields[0], 16))}/{int(fields[2], 16)}"
        lines += [f"address del {address} dev {fields[5]}", f"address add {address} dev {fields[5]} nodad"]
    return "".join(line + "\n" for line in lines)


def port_key(port: PortSpec) -> str:
    """The name of a forwarded port's claim in PORTS_DIR: one pod per protocol, address and port."""
    return f"{port.protocol}-{port.host_ip or 'any'}-{port.host_port}"


SOCKET_ACTIVATE = "/usr/bin/systemd-socket-activate"
SOCKET_PROXYD = "/lib/systemd/systemd-socket-proxyd"


def loopback_proxies(spec: PodSpec, target: Attachment, pod_unit: str) -> tuple[TransientService, ...]:
    """What no NAT rule can do: the kernel never routes ::1 off the host (nor 127.0.0.1 to a pod
    without an IPv4 address). For those, a TCP proxy on the loopback address (systemd's
    socket-proxyd, bound to the pod's unit) relays to the pod's address, IPv6 first. UDP ports are
    forwarded by NAT alone."""
    addresses = [ipaddress.ip_address(a) for a in target.addresses()]
    if not addresses:
        return ()
    has4 = any(a.version == 4 for a in addresses)
    to = next((a for a in addresses if a.version == 6), addresses[0])
    # named for the machine, not the unit: pod@NAME's "@" makes no valid transient unit name
    base = unit_name(spec.machine).removesuffix(".service")
    proxies = []
    for port in spec.ports:
        if port.protocol != "tcp":
            continue
        loopbacks = ["::1"] if port.host_ip in ("", "::1") else []
        if not has4 and port.host_ip in ("", "127.0.0.1"):
            loopbacks.append("127.0.0.1")
        for loopback in loopbacks:
            listen = (
                f"[{loopback}]:{port.host_port}" if loopback == "::1" else f"{loopback}:{port.host_port}"
            )
            destination = f"{to}:{port.port}"  # socket-proxyd splits at the last colon, no brackets
            family = "6" if loopback == "::1" else "4"
            proxies.append(
                TransientService(
                    name=f"{base}-port{family}-{port.name}.service",
                    description=f"nspod pod {spec.machine}: port {port.name} on {listen}",
                    exec_start=(
                        ExecCommand.of(SOCKET_ACTIVATE, f"--listen={listen}", SOCKET_PROXYD, destination),
                    ),
                    binds_to=(pod_unit,),
                    add_ref=False,
                )
            )
    return tuple(proxies)


def down_script(spec: PodSpec, plugins: tuple[str, ...], unit: str) -> str:
    """The teardown of the pod's network, idempotent: the pod's table, its namespace (the kernel
    removes its links with it), CNI DEL of every network in reverse order (IPAM leases; the CNI
    spec has plugins tolerate a namespace that is gone), the port claims. ``plugins``: each
    network's plugin binary."""
    assert spec.networks is not None
    here = runtime_dir(spec.uuid)
    lines = [
        "#!/bin/sh",
        f"# nspod: the teardown of pod {spec.uuid}'s network (stage1/cni.py), safe to run again",
    ]
    if spec.ports:
        lines.append(f"{NFT} delete table inet {table_name(spec.uuid)} 2>/dev/null")
    lines.append(f"[ ! -e {netns_path(spec.uuid)} ] || {IP} netns delete {netns_name(spec.uuid)}")
    for index in reversed(range(len(spec.networks))):
        env = {**plugin_env("DEL", spec, index, spec.networks[index]), "CNI_NETNS": ""}
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        conf = f"{here}/{index}.conf"
        lines.append(f"{assignments} {shlex.quote(plugins[index])} <{shlex.quote(conf)} >/dev/null")
    for port in spec.ports:
        claim = f"{PORTS_DIR}/{port_key(port)}"
        lines.append(f"grep -qx {spec.uuid} {claim} 2>/dev/null && rm -f {claim}")
    lines.append(f"rm -rf {shlex.quote(UNITS_DIR + '/' + unit)} {shlex.quote(here)}")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"
