"""A kvm pod's network (issue #25), with a real guest kernel on it (tests/harness/kvm_guest.py):
the guest has the pod's address and routes and reaches the host's side of the link, a host
server and the metadata service (its pod's own identity) as an nspawn pod's apps do; the host
reaches the guest's server at the pod's address and through its published port; ``kill -9`` of
QEMU leaves no namespace, tap, table or port claim behind. One guest for the module (TCG: ~10 s)."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.pods.network import BUILTIN
from stage1.abi import MDS_PORT, NetworkSpec, PortSpec
from stage1.cni import PORTS_DIR, netns_name, port_key, table_name
from tests.harness.kvm_guest import Guest, booted, pod_spec

pytestmark = pytest.mark.systemd
HOST_PORT, SERVER_PORT = 18197, 18198
BIG = 1_000_000  # bytes the guest fetches from the host: segmentation offloads through tap and redirect

SCRIPT = """
gw=$(ip route | sed -n 's/^default via \\([^ ]*\\).*/\\1/p')
echo "ADDR $(ip -o -4 address show dev eth0 | awk '{print $4}')"
echo "MAC $(cat /sys/class/net/eth0/address)"
ip route | sed 's/^/ROUTE /'
ping -c 1 -W 5 $gw >/dev/null && echo "PING ok"
echo "TCP $(printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc $gw {server} | wc -c)"
token=$(cat /token)
# stdin held open a while: busybox nc may end at its input's end, before a slow answer came
req="GET /$token/acMetadata/v1/pod/uuid HTTP/1.0\\r\\n\\r\\n"
echo "MDS $( (printf "$req"; sleep 3) | nc $gw {mds} | tail -n 1)"
mkdir -p /srv && echo guest-says-hi > /srv/index.html && httpd -p 80 -h /srv && echo SERVING
"""


class Big(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"x" * BIG)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory, metadata_service: None) -> Iterator[Guest]:
    server = http.server.ThreadingHTTPServer(("0.0.0.0", SERVER_PORT), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    default = NetworkSpec(name="default", config=json.dumps(BUILTIN["default"]))
    port = PortSpec(name="http", protocol="tcp", port=80, host_port=HOST_PORT)
    spec = pod_spec((default,), (port,))
    spec = dataclasses.replace(spec, mds_register=True)  # it must work, as --mds-register says
    directory = tmp_path_factory.mktemp("kvmnet")
    # the token is known once the pod is registered: the script reads it from its own spec's URL
    script = SCRIPT.replace("{server}", str(SERVER_PORT)).replace("{mds}", str(MDS_PORT))
    with booted(directory, spec, script) as running:
        yield running
    server.shutdown()


def said(guest: Guest, key: str) -> list[str]:
    text = guest.wait_for("GUEST-DONE")
    return [line.split(" ", 1)[1].strip() for line in text.splitlines() if line.startswith(key + " ")]


def test_the_guest_has_the_pods_address_mac_and_routes(guest: Guest) -> None:
    (address,) = said(guest, "ADDR")
    recorded = json.loads(Path(guest.pod_dir, "net.json").read_text())[0]["result"]
    assert address == recorded["ips"][0]["address"], recorded
    inside = [i["mac"] for i in recorded["interfaces"] if i.get("sandbox")]
    assert said(guest, "MAC") == inside, recorded  # the guest's NIC took the pod's link's MAC
    assert any(r.startswith("default via ") for r in said(guest, "ROUTE")), said(guest, "ROUTE")


def test_the_guest_reaches_the_host_over_the_pods_link(guest: Guest) -> None:
    assert said(guest, "PING") == ["ok"]
    assert int(said(guest, "TCP")[0]) > BIG  # headers and the whole body


def test_the_guest_reaches_the_metadata_service_as_its_pod(guest: Guest) -> None:
    assert said(guest, "MDS") == [guest.spec.uuid], guest.said()


def get(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return b"".join(iter(lambda: client.recv(4096), b""))


def test_the_host_reaches_the_guests_server_at_the_pods_address_and_published_port(guest: Guest) -> None:
    assert "SERVING" in guest.wait_for("GUEST-DONE")
    (address,) = said(guest, "ADDR")
    assert b"guest-says-hi" in get(address.split("/")[0], 80)
    assert b"guest-says-hi" in get("127.0.0.1", HOST_PORT)  # the pod's port forward (nft), as any pod's


def test_kill_9_of_qemu_leaves_no_namespace_tap_table_or_claim(guest: Guest) -> None:
    namespace = netns_name(guest.spec.uuid)
    taps = subprocess.run(["ip", "-netns", namespace, "-o", "link", "show", "type", "tun"],
                          capture_output=True, text=True)  # fmt: skip
    assert "tap0" in taps.stdout, taps
    guest.kill()
    assert namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert table_name(guest.spec.uuid) not in tables
    claim = Path(PORTS_DIR, port_key(guest.spec.ports[0]))
    assert not claim.exists() or guest.spec.uuid not in claim.read_text()


def test_net_none_is_loopback_alone(tmp_path: Path) -> None:
    """--net=none: the pod's namespace with loopback alone, QEMU given no NIC at all."""
    script = 'echo "LINKS $(ls /sys/class/net | tr "\\n" " ")"\n'
    with booted(tmp_path, pod_spec(()), script) as running:
        text = running.wait_for("GUEST-DONE")
        inside = subprocess.run(["ip", "-netns", netns_name(running.spec.uuid), "-o", "link"],
                                capture_output=True, text=True)  # fmt: skip
    assert "LINKS lo " in text and "eth0" not in text, text
    assert [line.split(":")[1].strip() for line in inside.stdout.splitlines()] == ["lo"], inside
