"""Every pod on its own network (issue #12, items 1-3): a namespace per pod joined to CNI nets,
forwarded ports (IPv4 and IPv6, the host's addresses and its loopback), DNS from the net or the
host. All inside the test host's own network namespace."""

from __future__ import annotations

import functools
import ipaddress
import json
import secrets
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import assert_output_schema
from tests.integration.test_pods import Nspod, busybox_image

pytestmark = pytest.mark.systemd
APPLETS = ("sh", "echo", "sleep", "cat", "httpd", "nc", "ip", "true", "wc")
IPAM = "/run/nspod/net/ipam"
NETS = {  # user nets of the test's own config: dual stack, IPv6 only, one naming a DNS server
    "10-dual": {"name": "dual", "type": "ptp", "ipMasq": True,
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": "172.16.40.0/24"}], [{"subnet": "fd00:40::/64"}]],
                         "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}], "dataDir": IPAM}},
    "20-v6": {"name": "v6only", "type": "ptp", "ipMasq": False,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": "fd00:41::/64"}]],
                       "routes": [{"dst": "::/0"}], "dataDir": IPAM}},
    "30-dns": {"name": "withdns", "type": "ptp", "ipMasq": False,
               "dns": {"nameservers": ["10.0.0.53"], "search": ["pods.test"]},
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.16.42.0/24"}]], "dataDir": IPAM}},
}  # fmt: skip


def web_image(directory: Path) -> Path:
    """busybox with httpd serving /www/index.html on port 80, the port named ``http``."""
    (directory / "layout/rootfs/www").mkdir(parents=True)
    (directory / "layout/rootfs/www/index.html").write_text("hello-from-pod\n")
    app = {
        "exec": ["/bin/httpd", "-f", "-p", "80", "-h", "/www"],
        "user": "0",
        "group": "0",
        "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
    }
    return busybox_image(directory, app, name="example.com/web", applets=APPLETS)


@dataclass
class Net:
    tool: Nspod
    config: Path
    image: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.tool(f"--local-config={self.config}", *args)

    def sh(self, script: str, *flags: str) -> subprocess.CompletedProcess[str]:
        """A foreground pod of the image running ``script``; its output without the app prefix."""
        done = self("run", *flags, str(self.image), "--exec=/bin/sh", "--", "-c", script)
        done.stdout = "".join(line.removeprefix("web: ") + "\n" for line in done.stdout.splitlines())
        return done

    def status(self, pod: str) -> dict[str, object]:
        done = self("status", "--format=json", pod)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Net:
    base = tmp_path_factory.mktemp("network")
    (base / "conf/net.d").mkdir(parents=True)
    for name, config in NETS.items():
        (base / f"conf/net.d/{name}.conf").write_text(json.dumps({"cniVersion": "1.0.0", **config}))
    return Net(Nspod(base / "data"), base / "conf", web_image(base))


@pytest.fixture(scope="module")
def web(net: Net) -> Iterator[dict[str, object]]:
    """A server pod on the default net, its port http forwarded from 18080."""
    ran = net("run", "--detach", "--name=netweb", "--port=http:18080", str(net.image))
    assert ran.returncode == 0, ran.stderr
    try:
        yield net.status("netweb")
    finally:
        net("stop", "netweb")


def address(status: dict[str, object], version: int = 4) -> str:
    networks = status["networks"]
    assert isinstance(networks, list)
    return str(
        next(a for n in networks for a in n["addresses"] if ipaddress.ip_address(a).version == version)
    )


def gateway(status: dict[str, object]) -> str:
    networks = status["networks"]
    assert isinstance(networks, list)
    return str(networks[0]["gateways"][0])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body.decode()


@pytest.fixture
def host_server() -> Iterator[int]:
    """A TCP server on all the host's addresses that answers ``hello-from-host``."""
    server = socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.sendall(b"hello-from-host\n")

    threading.Thread(target=serve, daemon=True).start()
    yield port
    server.close()


def test_a_pod_gets_an_address_on_the_default_net(net: Net, web: dict[str, object]) -> None:
    assert_output_schema("pod-status", web)
    pod = address(web)
    assert ipaddress.ip_address(pod) in ipaddress.ip_network("172.16.28.0/24")
    assert web["networks"][0]["interface"] == "eth0"  # type: ignore[index]
    machine = subprocess.run(["machinectl", "status", "netweb"], capture_output=True, text=True).stdout
    assert f"Address: {pod}" in machine
    assert f"default:ip4={pod}" in net("list", "--no-legend", "--full").stdout
    assert f"networks=default:ip4={pod}" in net("status", "netweb").stdout


def test_the_host_reaches_the_pod(web: dict[str, object]) -> None:
    assert fetch(f"http://{address(web)}/index.html") == "hello-from-pod\n"


def test_a_pod_reaches_the_host_and_other_pods(net: Net, web: dict[str, object], host_server: int) -> None:
    gw, other = gateway(web), address(web)
    done = net.sh(
        f"nc {gw} {host_server} </dev/null; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc {other} 80"
    )
    assert "hello-from-host" in done.stdout and "hello-from-pod" in done.stdout, done.stdout + done.stderr


@pytest.fixture
def outside() -> Iterator[str]:
    """Another host beyond this one: a namespace of the test's own behind a veth pair (10.123.0.2),
    where a server answers with the address the connection came from."""
    ns, script = (
        "nspod-test-outside",
        "ip link set lo up; ip addr add 10.123.0.2/24 dev o1; ip link set o1 up",
    )
    run = functools.partial(subprocess.run, check=True)
    run(["ip", "netns", "add", ns])
    try:
        run(["ip", "link", "add", "o0", "type", "veth", "peer", "name", "o1", "netns", ns])
        run(["ip", "addr", "add", "10.123.0.1/24", "dev", "o0"])
        run(["ip", "link", "set", "o0", "up"])
        run(["ip", "netns", "exec", ns, "sh", "-c", script])
        serve = "import socket; s = socket.create_server(('10.123.0.2', 9999)); print('up', flush=True); "
        serve += "c, peer = s.accept(); c.sendall(peer[0].encode() + b'\\n')"
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", serve], stdout=subprocess.PIPE
        )
        assert server.stdout is not None and server.stdout.readline() == b"up\n"
        yield "10.123.0.2 9999"
        server.kill()
        server.wait()
    finally:
        subprocess.run(["ip", "link", "del", "o0"], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_the_default_net_masquerades_what_leaves_the_host(net: Net, outside: str) -> None:
    done = net.sh(f"nc -w 5 {outside} </dev/null")
    assert done.stdout.strip() == "10.123.0.1", (
        done.stdout + done.stderr
    )  # the host's address, not the pod's


def test_default_restricted_reaches_the_host_only(
    net: Net, web: dict[str, object], host_server: int
) -> None:
    # the built-in net's gateway (host-local's first address of 172.31.0.0/16) is the host's end
    script = f"ip -4 route; nc 172.31.0.1 {host_server} </dev/null; nc -w 2 {address(web)} 80 </dev/null"
    done = net.sh(script + " && echo REACHED", "--net=default-restricted")
    routes, _, rest = done.stdout.partition("hello-from-host")
    assert rest and "default" not in routes, done.stdout + done.stderr  # the host, and no default route
    assert "REACHED" not in rest


def test_net_host_sees_the_hosts_interfaces(net: Net) -> None:
    names = "ip -o link | cut -d: -f2 | sort"
    inside = net.sh(names, "--net=host").stdout.split()
    outside = subprocess.run(["sh", "-c", names], capture_output=True, text=True).stdout.split()
    assert inside == outside and "lo" in inside


def test_net_none_has_loopback_only_and_up(net: Net) -> None:
    done = net.sh("ip -o link", "--net=none")
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and ": lo:" in lines[0] and "UP" in lines[0], done.stdout + done.stderr


def test_a_user_net_with_cni_args(net: Net) -> None:
    done = net.sh("ip -o addr show eth0", "--net=dual:IgnoreUnknown=1;IP=172.16.40.77")
    assert "inet 172.16.40.77/24" in done.stdout and "inet6 fd00:40::" in done.stdout, (
        done.stdout + done.stderr
    )


def test_two_nets_two_interfaces(net: Net) -> None:
    done = net.sh("ip -o -4 addr", "--net=default,withdns")
    assert "eth0" in done.stdout and "172.16.28." in done.stdout
    assert "eth1" in done.stdout and "172.16.42." in done.stdout


def test_a_forwarded_port_answers_on_the_hosts_addresses_and_loopback(
    net: Net, web: dict[str, object]
) -> None:
    for host in ("127.0.0.1", "[::1]", gateway(web)):  # the gateway is one of the host's addresses
        assert fetch(f"http://{host}:18080/index.html") == "hello-from-pod\n", host
    # as another host sees it: from another pod, to the host's address
    done = net.sh(f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc {gateway(web)} 18080")
    assert "hello-from-pod" in done.stdout, done.stdout + done.stderr


def test_a_v6_pods_port(net: Net) -> None:
    ran = net("run", "--detach", "--name=netweb6", "--net=v6only", "--port=http:18081", str(net.image))
    assert ran.returncode == 0, ran.stderr
    try:
        status = net.status("netweb6")
        host6 = gateway(status)
        assert ipaddress.ip_address(address(status, 6)) in ipaddress.ip_network("fd00:41::/64")
        for host in ("[::1]", "127.0.0.1", f"[{host6}]"):
            assert fetch(f"http://{host}:18081/index.html") == "hello-from-pod\n", host
    finally:
        net("stop", "netweb6")


def test_port_conflicts_are_refused_before_the_pod_starts(net: Net, web: dict[str, object]) -> None:
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    taken = net("run", "--detach", "--port=http:18080", str(net.image))
    assert taken.returncode == 254 and "forwarded to pod" in taken.stderr, taken.stderr
    with socket.create_server(("127.0.0.1", 18082)):
        bound = net("run", "--detach", "--port=http:18082", str(net.image))
    assert bound.returncode == 254 and "in use on the host" in bound.stderr, bound.stderr
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == before


def test_dns_comes_from_the_net_else_the_host(net: Net) -> None:
    from_net = net.sh("cat /etc/resolv.conf", "--net=withdns").stdout
    assert "nameserver 10.0.0.53" in from_net and "search pods.test" in from_net
    assert net.sh("cat /etc/resolv.conf").stdout == Path("/etc/resolv.conf").read_text()
    none = net.sh("cat /etc/resolv.conf", "--dns=none")
    assert "No such file" in none.stdout + none.stderr  # the image's own: it has none


def test_bad_net_and_port_requests_are_usage_errors(net: Net) -> None:
    for flags, message in (
        (["--net=bogus"], "no net named 'bogus'"),
        (["--net=host", "--port=http:80"], "has none"),
        (["--port=nope:80"], "no app has a port named 'nope'"),
        (["--port=http"], "bad --port"),
        (["--net=host,default"], "stands alone"),
    ):
        done = net("run", *flags, str(net.image))
        assert done.returncode == 2 and message in done.stderr, (flags, done.stderr)


def test_pods_joining_a_new_subnet_at_once_masquerade_it_once(net: Net) -> None:
    """The subnet's masquerading is made by whichever pod comes first (stage1/nat.py): five at once
    all start, and the shared table holds one chain and one jump for it, and one loopback guard."""
    subnet = ipaddress.ip_network(f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}.0/24")
    name = f"masq{subnet.network_address.packed[1]}x{subnet.network_address.packed[2]}"
    ipam = {"type": "host-local", "ranges": [[{"subnet": str(subnet)}]], "dataDir": IPAM}
    conf = {"cniVersion": "1.0.0", "name": name, "type": "ptp", "ipMasq": True, "ipam": ipam}
    path = net.config / f"net.d/90-{name}.conf"
    path.write_text(json.dumps(conf))
    # the loopback guard too, as on a host where nspod runs the first time (issue #23, item 3)
    subprocess.run(["nft", "delete", "chain", "inet", "nspod", "guard"], capture_output=True)
    try:
        with ThreadPoolExecutor(5) as pool:
            runs = list(pool.map(lambda _: net.sh("ip -o -4 addr show eth0", f"--net={name}"), range(5)))
    finally:
        path.unlink()
    assert all(r.returncode == 0 and f"inet {str(subnet)[:-5]}" in r.stdout for r in runs), runs
    table = subprocess.run(["nft", "list", "table", "inet", "nspod"], capture_output=True, text=True).stdout
    assert table.count(f"ip saddr {subnet} jump ") == 1, table
    assert table.count(f"ip daddr != {subnet} ip daddr != 224.0.0.0/4 masquerade") == 1, table
    assert table.count('iif != "lo" ip daddr 127.0.0.0/8 counter') == 1, table
