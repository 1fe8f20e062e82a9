"""Issue #23 item 3's attack (the CVE-2020-8558 pattern, test_host_loopback.py) in its kvm shape
(issue #25): the attacker is root of a guest kernel on a kvm pod's network (the tap beside the pod's
link, tc redirecting between them: stage1/kvm/netplan.py), so besides loopnet's hand-made frames
it can do what no container can: take 127.0.0.0/8 off its own loopback, route it to the gateway
with route_localnet on, and connect() through its own kernel's TCP. The host's servers on its
loopback addresses judge, as for nspawn pods; the pod has a published port (the route_localnet
case). The guest (tests/harness/kvm_guest.py) runs in the test host, never on the host itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stage0.pods.network import BUILTIN
from stage1.abi import NetworkSpec, PortSpec
from tests.attacks.conftest import compile_program
from tests.attacks.test_host_loopback import TCP, UDP, WILD, Host, assert_held, host  # noqa: F401 (fixture)
from tests.harness.kvm_guest import booted, pod_spec

pytestmark = pytest.mark.systemd

# the guest's own kernel sends to the host's loopback: its loopback routes gone, 127/8 via the gateway
ROUTED = f"""
gw=$(ip route | sed -n 's/^default via \\([^ ]*\\).*/\\1/p')
echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet
echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet
ip route del local 127.0.0.1 dev lo table local 2>/dev/null
ip route del local 127.0.0.0/8 dev lo table local 2>/dev/null
ip address del 127.0.0.1/8 dev lo
ip route add 127.0.0.0/8 via $gw dev eth0 && echo "kvm-route setup-ok"
sent=$(cat /sys/class/net/eth0/statistics/tx_packets)
for to in 127.0.0.1 127.0.0.2 127.1.2.3; do
  r=BLIND; echo routed-$to | nc -w 2 $to {TCP} 2>/dev/null | grep secret >/dev/null && r=ESCAPED
  echo "kvm-route-tcp-$to $r"
  echo routed-udp-$to | nc -u -w 1 $to {UDP} >/dev/null 2>&1; echo "kvm-route-udp-$to BLIND"
done
echo "control-kvm-route-sent $(( $(cat /sys/class/net/eth0/statistics/tx_packets) - sent ))"
"""
SCRIPT = f"/bin/loopnet {TCP} {UDP} {WILD}\n{ROUTED}"


def test_a_kvm_guest_with_a_published_port_cannot_reach_the_hosts_loopback(
    tmp_path: Path,
    host: Host,  # noqa: F811
) -> None:
    default = NetworkSpec(name="default", config=json.dumps(BUILTIN["default"]))
    spec = pod_spec((default,), (PortSpec(name="http", protocol="tcp", port=80, host_port=18199),))
    with booted(tmp_path, spec, SCRIPT, {"bin/loopnet": compile_program("loopnet", tmp_path)}) as guest:
        text = guest.wait_for("GUEST-DONE", timeout=120)
    lines = text[text.index("GUEST-NET-OK") :].splitlines()[1:]
    tries = dict(line.strip().split(" ", 1) for line in lines if " " in line.strip())
    assert tries.get("setup", "").startswith("ok") and "kvm-route" in tries, text
    assert "done" in (line.strip() for line in lines), text
    controls = {r[2] for r in host.reached}
    assert {"control-raw4-udp-gateway", "control-raw6-udp-gateway"} <= controls, (host.reached, tries)
    assert int(tries["control-kvm-route-sent"]) >= 6, tries  # the guest's kernel did send them out
    assert len(tries) >= 26, tries  # every try ran: loopnet's and the routed ones
    assert_held(tries, host)
