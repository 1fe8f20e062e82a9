"""The pod's networks as data (issue #12): --net and --port as read, net.d as loaded, the ports
resolved against the apps', and stage1's plan for them (stage1/cni.py)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from stage0.errors import Error, UsageError
from stage0.pods.network import BUILTIN, PortRequest, load_nets, net_words, networks, parse_port, port_specs
from stage0.pods.podfile import parse, render
from stage0.pods.requests import AppRequest, PodRequest
from stage1.abi import NetworkSpec, PodSpec, PortSpec
from stage1.cni import (
    Attachment,
    forward_target,
    loopback_proxies,
    plugin_config,
    resolv_conf,
    skip_dad,
    with_dns,
)
from stage1.nat import GUARD, masquerade_chain, masquerade_subnets, shared_chains, shared_setup

NETS = {name: json.dumps(config) for name, config in BUILTIN.items()}


def test_no_net_is_the_default_net() -> None:
    assert networks((), NETS) == (NetworkSpec(name="default", config=NETS["default"]),)


def test_host_none_and_all() -> None:
    assert networks(("host",), NETS) is None
    assert networks(("none",), NETS) == ()
    assert [n.name for n in networks(("all",), NETS) or ()] == ["default", "default-restricted"]


def test_named_nets_in_order_with_their_cni_args() -> None:
    words = net_words(["default-restricted,default:IP=172.16.28.9", "default-restricted:A=1;B=2"][:1])
    chosen = networks(words, NETS) or ()
    assert [(n.name, n.args) for n in chosen] == [("default-restricted", ""), ("default", "IP=172.16.28.9")]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["host,default"], "--net=host stands alone"),
        (["none", "default"], "--net=none stands alone"),
        (["default", "default"], "named twice"),
        (["default:IP"], "bad CNI_ARGS"),
        (["host:IP=1"], "takes no CNI_ARGS"),
    ],
)
def test_bad_net_words(values: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        net_words(values)


def test_an_unknown_net_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match="no net named 'lan'") as caught:
        networks(("lan",), NETS)
    assert "default, default-restricted" in caught.value.hint


def test_user_nets_add_to_and_replace_the_builtins(tmp_path: Path) -> None:
    (tmp_path / "local/net.d").mkdir(parents=True)
    (tmp_path / "local/net.d/10-lan.conf").write_text('{"name": "lan", "type": "bridge"}')
    (tmp_path / "local/net.d/20-default.conf").write_text('{"name": "default", "type": "macvlan"}')
    nets = load_nets([str(tmp_path / "system"), str(tmp_path / "local")])
    assert json.loads(nets["lan"])["type"] == "bridge"
    assert json.loads(nets["default"])["type"] == "macvlan"
    assert json.loads(nets["default-restricted"])["ipMasq"] is False


@pytest.mark.parametrize("text", ["{", '{"name": "x"}', "[1]"])
def test_a_bad_net_file_is_named(tmp_path: Path, text: str) -> None:
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d/bad.conf").write_text(text)
    with pytest.raises(Error, match=r"bad\.conf"):
        load_nets([str(tmp_path)])


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("http:8080", PortRequest("http", 8080)),
        ("http:127.0.0.1:8080", PortRequest("http", 8080, "127.0.0.1")),
        ("http:[::1]:8080", PortRequest("http", 8080, "::1")),
    ],
)
def test_ports(text: str, port: PortRequest) -> None:
    assert parse_port(text) == port
    assert port.flag() == text


@pytest.mark.parametrize("text", ["http", "http:", ":80", "http:0", "http:70000", "http:nohost:80"])
def test_bad_ports(text: str) -> None:
    with pytest.raises(UsageError, match="bad --port"):
        parse_port(text)


def test_ports_resolve_to_the_apps_ports() -> None:
    offered = {"http": ("tcp", 80), "dns": ("udp", 53)}
    nets = networks((), NETS)
    specs = port_specs((PortRequest("http", 8080), PortRequest("dns", 5353, "127.0.0.1")), offered, nets)
    assert specs == (
        PortSpec(name="http", protocol="tcp", port=80, host_port=8080),
        PortSpec(name="dns", protocol="udp", port=53, host_port=5353, host_ip="127.0.0.1"),
    )
    with pytest.raises(UsageError, match="forwarded twice"):
        port_specs((PortRequest("http", 8080), PortRequest("http", 8080)), offered, nets)
    with pytest.raises(UsageError, match="has none"):
        port_specs((PortRequest("http", 8080),), offered, None)


def test_pod_files_carry_nets_and_ports() -> None:
    request = PodRequest(
        apps=(AppRequest(image="example.com/web"),),
        nets=("default", "lan:IP=10.0.0.9"),
        ports=(PortRequest("http", 8080, "::1"),),
    )
    text = render(request)
    assert 'net = ["default", "lan:IP=10.0.0.9"]' in text and 'port = ["http:[::1]:8080"]' in text
    back = parse(text, "web.toml", "web").request
    assert (back.nets, back.ports) == (request.nets, request.ports)


def test_a_bad_port_in_a_pod_file_names_the_file_and_key() -> None:
    with pytest.raises(Error, match=r"web\.toml: /port: bad --port"):
        parse('port = ["http:x"]\n[[app]]\nimage = "example.com/web"\n', "web.toml", "web")


SPEC = PodSpec(uuid="u", machine="web", hostname="web", apps=(), dns_default=True)
RESULT = {
    "ips": [{"address": "172.16.28.2/24", "gateway": "172.16.28.1"}],
    "interfaces": [{"name": "veth0"}],
}


def test_dns_comes_from_the_first_net_that_names_servers_else_the_host() -> None:
    plain = Attachment("default", "eth0", RESULT)
    named = Attachment("lan", "eth1", {**RESULT, "dns": {"nameservers": ["10.0.0.53"], "search": ["lan"]}})
    assert (
        resolv_conf((plain, named))
        == "# Generated by nspod from network lan\nnameserver 10.0.0.53\nsearch lan\n"
    )
    assert with_dns(SPEC, (plain, named), host_file=True).resolv_conf == resolv_conf((named,))
    assert with_dns(SPEC, (plain,), host_file=True).resolv_conf_from_host
    assert "no network" in (with_dns(SPEC, (), host_file=False).resolv_conf or "")


def test_ports_go_to_the_first_masquerading_net_else_the_last() -> None:
    nets = (
        NetworkSpec(name="a", config='{"type": "ptp"}'),
        NetworkSpec(name="b", config='{"type": "ptp", "ipMasq": true}'),
        NetworkSpec(name="c", config='{"type": "ptp"}'),
    )
    joined = tuple(Attachment(n.name, f"eth{i}", RESULT) for i, n in enumerate(nets))
    spec = PodSpec(uuid="u", machine="web", hostname="web", apps=(), networks=nets)
    assert (forward_target(spec, joined) or joined[0]).name == "b"
    plain = PodSpec(uuid="u", machine="web", hostname="web", apps=(), networks=(nets[0], nets[2]))
    assert (forward_target(plain, (joined[0], joined[2])) or joined[0]).name == "c"


def test_loopback_proxies_only_where_nat_cannot_reach() -> None:
    ports = (
        PortSpec(name="http", protocol="tcp", port=80, host_port=8080),
        PortSpec(name="dns", protocol="udp", port=53, host_port=5353),
    )
    spec = PodSpec(uuid="u", machine="web", hostname="web", apps=(), ports=ports)
    v4 = loopback_proxies(spec, Attachment("default", "eth0", RESULT), "nspod-web.service")
    assert [p.name for p in v4] == ["nspod-web-port6-http.service"]  # ::1 only; 127.0.0.1 is NAT's
    only6 = {"ips": [{"address": "fd00::2/64"}]}
    v6 = loopback_proxies(spec, Attachment("v6", "eth0", only6), "nspod-web.service")
    assert [p.name for p in v6] == ["nspod-web-port6-http.service", "nspod-web-port4-http.service"]
    assert v6[1].exec_start[0].argv[-1] == "fd00::2:80"


def test_loopback_proxies_of_a_pod_at_unit_have_valid_names() -> None:
    # issue #23 item 7: "pod@web-port6-http.service" was refused by nspod's own unit-name check
    ports = (PortSpec(name="http", protocol="tcp", port=80, host_port=8080),)
    spec = PodSpec(uuid="u", machine="web", hostname="web", apps=(), ports=ports)
    (proxy,) = loopback_proxies(spec, Attachment("default", "eth0", RESULT), "pod@web.service")  # no Error
    assert proxy.name == "nspod-web-port6-http.service" and proxy.binds_to == ("pod@web.service",)


def test_only_the_hosts_tentative_v6_addresses_are_re_added_undetected() -> None:
    if_inet6 = (
        "fe80000000000000d8b421fffe2289f3 05 40 20 c0 veth0de93942\n"  # tentative link-local
        "fd000049000000000000000000000001 05 80 00 c0 veth0de93942\n"  # tentative gateway /128
        "fd000049000000000000000000000009 06 80 00 80 veth0de93942\n"  # settled
        "fd000049000000000000000000000002 07 80 00 c0 vethother\n"  # not the pod's
        "00000000000000000000000000000001 01 80 10 80       lo\n"
    )
    assert skip_dad(if_inet6, frozenset({"veth0de93942"})).splitlines() == [
        "address del fe80::d8b4:21ff:fe22:89f3/64 dev veth0de93942",
        "address add fe80::d8b4:21ff:fe22:89f3/64 dev veth0de93942 nodad",
        "address del fd00:49::1/128 dev veth0de93942",
        "address add fd00:49::1/128 dev veth0de93942 nodad",
    ]
    assert skip_dad(if_inet6, frozenset({"veth1"})) == ""


def test_nspod_masquerades_for_ptp_and_bridge_once_per_subnet() -> None:
    nets = (
        NetworkSpec(name="a", config='{"type": "ptp", "ipMasq": true}'),
        NetworkSpec(name="b", config='{"type": "macvlan", "ipMasq": true}'),
        NetworkSpec(name="c", config='{"type": "bridge"}'),
    )
    assert json.loads(plugin_config(nets[0])) == {"type": "ptp", "ipMasq": False}
    assert plugin_config(nets[1]) == nets[1].config  # not one nspod knows: the plugin's own business
    assert plugin_config(nets[2]) == nets[2].config
    spec = PodSpec(uuid="u", machine="web", hostname="web", apps=(), networks=nets)
    joined = tuple(Attachment(n.name, f"eth{i}", RESULT) for i, n in enumerate(nets))
    (subnet,) = masquerade_subnets(spec, joined)  # macvlan's ipMasq is its own; c does not masquerade
    assert str(subnet) == str(ipaddress.ip_interface(RESULT["ips"][0]["address"]).network)
    again = (*joined[:2], Attachment("c", "eth2", RESULT))
    assert masquerade_subnets(dataclasses.replace(spec, networks=(nets[0], nets[1], nets[0])), again) == (
        subnet,
    )
    setup = shared_setup((subnet, ipaddress.ip_network("fd00:49::/64")), guard=False)
    assert setup.count("create chain") == 2 and setup.count(" masquerade\n") == 2
    assert "ip6 daddr != fd00:49::/64 ip6 daddr != ff00::/8 masquerade" in setup
    listing = (
        f"table inet nspod {{\n\tchain postrouting {{\n\t}}\n\tchain {masquerade_chain(subnet)} {{\n\t}}\n}}"
    )
    assert shared_chains(listing) == {"postrouting", masquerade_chain(subnet)}


def test_the_shared_table_guards_the_hosts_loopback() -> None:
    """Issue #23, item 3: what arrives from outside ``lo`` addressed to or from loopback is dropped
    before conntrack and NAT (route_localnet, set for forwarded ports, would route it to the host)."""
    setup = shared_setup((), guard=True)
    assert f"create chain inet nspod {GUARD} {{ type filter hook prerouting priority -300;" in setup
    for rule in (
        'iif != "lo" ip saddr 127.0.0.0/8 counter drop',
        'iif != "lo" ip daddr 127.0.0.0/8 counter drop',
        'iif != "lo" ip6 saddr { ::1, ::ffff:127.0.0.0/104 } counter drop',
        'iif != "lo" ip6 daddr { ::1, ::ffff:127.0.0.0/104 } counter drop',
    ):
        assert f"add rule inet nspod {GUARD} {rule}\n" in setup
    assert GUARD not in shared_setup((ipaddress.ip_network("10.1.0.0/24"),), guard=False)
