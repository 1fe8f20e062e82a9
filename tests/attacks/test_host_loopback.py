"""Issue #23, item 3: a pod reaches the host's loopback services (the CVE-2020-8558 pattern).

The attacker controls an image and has CAP_NET_RAW (nspod's default, as rkt's and docker's):
``programs/loopnet.c`` sends hand-made frames to the gateway's MAC addressed to 127.x, ::1 and
::ffff:127.0.0.1, spoofs loopback sources, source-routes, and connect()s. The servers the test
starts on the test host's loopback addresses (and one on all of them, which records who spoke)
are the judge: whatever reached them is written down here, on the host's side, whatever the app
says. Control datagrams to the gateway's own IPv4 and link-local IPv6 addresses must arrive, so
the frames demonstrably reach the host. Pods: with a published port, without, and on a bridge
beside (then after) one with a port, since route_localnet on a bridge is every member's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image

pytestmark = pytest.mark.systemd
TCP, UDP, WILD = 17431, 17432, 17433  # the loopback services' ports, and the all-addresses one's
LOOPBACKS = ("127.0.0.1", "127.0.0.2", "127.1.2.3", "::1")
NET = "loopnetbr"  # a bridge: pods with and without ports behind one host interface
BRIDGE = {
    "cniVersion": "1.0.0", "name": NET, "type": "bridge", "bridge": "nspodbr23", "isGateway": True,
    "ipMasq": False,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.123.0/24"}]],
             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/run/nspod/net/ipam"},
}  # fmt: skip


@dataclass
class Host:
    """The host's servers and what reached them: (server address, peer address, first line)."""

    reached: list[tuple[str, str, str]] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)

    def listen(self, address: str, port: int, kind: socket.SocketKind) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server = socket.socket(family, kind)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and address == "::":
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind((address, port))
        if kind == socket.SOCK_STREAM:
            server.listen()
        self.sockets.append(server)
        threading.Thread(target=self._serve, args=(server, address), daemon=True).start()

    def _serve(self, server: socket.socket, address: str) -> None:
        while True:
            try:
                if server.type == socket.SOCK_DGRAM:
                    data, peer = server.recvfrom(2048)
                    if peer is None:  # shut down
                        return
                    self.reached.append((address, peer[0], data.decode(errors="replace").strip()))
                    server.sendto(b"answer\n", peer)  # an answer the attacker can see, if it can
                    continue
                client, peer = server.accept()
            except OSError:
                return
            with client:
                client.settimeout(2)
                try:
                    data = client.recv(2048)
                except OSError:
                    data = b""
                self.reached.append((address, peer[0], data.decode(errors="replace").strip()))
                client.sendall(b"HTTP/1.0 200 OK\r\n\r\nsecret-of-the-host\n")

    def breaches(self) -> list[tuple[str, str, str]]:
        """What reached the host but the controls (to the gateway's own addresses, from the pod's):
        anything at a loopback-bound service, anything from a loopback source, any other try."""
        return [
            r
            for r in self.reached
            if r[0] in LOOPBACKS
            or ipaddress.ip_address(r[1].removeprefix("::ffff:").partition("%")[0]).is_loopback
            or not r[2].startswith("control-")
        ]


@pytest.fixture
def host() -> Iterator[Host]:
    servers = Host()
    for address in LOOPBACKS:
        servers.listen(address, TCP, socket.SOCK_STREAM)
        servers.listen(address, UDP, socket.SOCK_DGRAM)
    servers.listen("::", WILD, socket.SOCK_DGRAM)
    yield servers
    for server in servers.sockets:  # shutdown wakes the thread blocked on it; close alone would not
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, programs: dict[str, Path]) -> Path:
    app = {"ports": [{"name": "http", "protocol": "tcp", "port": 80}]}
    exec_ = ["/bin/loopnet", str(TCP), str(UDP), str(WILD)]
    return attack_image(tmp_path_factory.mktemp("loopnet"), exec_, programs=programs, app=app)


def attack(nspod: Nspod, image: Path, host: Host, *flags: str, config: str = "") -> dict[str, str]:
    """Run the attack in a pod; each try's result as the app reports it (the host judges)."""
    done = nspod(*([config] if config else []), "run", *flags, str(image))
    lines = [line.partition(": ")[2] or line for line in done.stdout.splitlines()]
    tries = dict(line.split(" ", 1) for line in lines if " " in line)
    assert done.returncode == 0 and "done" in lines and tries.get("setup", "").startswith("ok"), (
        done.stdout + done.stderr
    )
    controls = {r[2] for r in host.reached}
    assert {"control-raw4-udp-gateway", "control-raw6-udp-gateway"} <= controls, (host.reached, tries)
    assert tries["control-raw4-udp-gateway"] == "ESCAPED", tries
    return tries


def assert_held(tries: dict[str, str], host: Host) -> None:
    assert host.breaches() == [], "\n".join(map(str, [*host.breaches(), *tries.items()]))
    assert [t for t, result in tries.items() if result == "ESCAPED" and not t.startswith("control")] == []


def test_a_pod_with_a_published_port_cannot_reach_the_hosts_loopback(
    nspod: Nspod, image: Path, host: Host
) -> None:
    tries = attack(nspod, image, host, "--port=http:18090")
    assert len(tries) >= 20, tries  # every try ran
    assert_held(tries, host)


def test_a_pod_without_ports_cannot_reach_the_hosts_loopback(nspod: Nspod, image: Path, host: Host) -> None:
    assert_held(attack(nspod, image, host), host)


@pytest.fixture
def bridge(tmp_path: Path) -> str:
    """The --local-config flag of a config with the bridge net."""
    (tmp_path / "conf/net.d").mkdir(parents=True)
    (tmp_path / "conf/net.d/loopnet.conf").write_text(json.dumps(BRIDGE))
    return f"--local-config={tmp_path / 'conf'}"


def test_a_pod_on_a_bridge_beside_a_pod_with_ports_cannot_reach_it(
    nspod: Nspod, image: Path, host: Host, bridge: str
) -> None:
    """route_localnet set for a published port is the bridge's: every pod behind it shares it. The
    port still answers on the host's loopback, through the bridge."""
    flags = ("--detach", f"--net={NET}", "--port=http:18091")
    server = nspod(bridge, "run", *flags, str(image), "--exec=/bin/busybox", "--", "httpd", "-f", "-p", "80")
    assert server.returncode == 0, server.stderr
    tries = attack(nspod, image, host, f"--net={NET}", config=bridge)
    assert_held(tries, host)
    for loopback in ("127.0.0.1", "::1"):
        with socket.create_connection((loopback, 18091), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1."), loopback


def test_a_pod_on_a_bridge_after_a_pod_with_ports_cannot_reach_it(
    nspod: Nspod, image: Path, host: Host, bridge: str
) -> None:
    """The bridge outlives its pods, and keeps the route_localnet one's port set; the shared table
    may be gone meanwhile (the README's way to drop it when no pod runs). The next pod, without
    ports nor masquerading, still finds the host's loopback guarded."""
    flags = ("--detach", f"--net={NET}", "--port=http:18092")
    server = nspod(bridge, "run", *flags, str(image), "--exec=/bin/sleep", "--", "600")
    assert server.returncode == 0, server.stderr
    assert nspod("stop", server.stdout.strip()).returncode == 0
    subprocess.run(["nft", "delete", "table", "inet", "nspod"], capture_output=True)
    assert_held(attack(nspod, image, host, f"--net={NET}", config=bridge), host)
