"""A kvm pod on the pod's network (issue #25), end to end through ``nspod --stage1=kvm run``: the
app in the guest has the pod's address (the one ``nspod list`` shows), its DNS and routes, reaches
the metadata service as its pod, serves a published port the host reaches; ``--net=host`` is
refused before anything is made; after a kill -9 of QEMU and gc no namespace, tap, table or claim
is left. One VM (TCG here: ~30 s)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from stage1.cni import PORTS_DIR, netns_name, table_name
from tests.integration.test_kvm import kvm_assets, pods  # noqa: F401 (autouse fixture)
from tests.integration.test_pod_units import prop
from tests.integration.test_pods import Nspod, bb, nspod  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not os.path.exists("/usr/bin/qemu-system-x86_64"), reason="no QEMU"),
]
HOST_PORT = 18196
APP = "; ".join([
    "echo ADDR $(ip -o -4 address show dev eth0 | awk '{print $4}')",
    "ip route | sed 's/^/ROUTE /'",
    "sed 's/^/DNS /' /etc/resolv.conf",
    "where=${AC_METADATA_URL#http://}; at=${where%%/*}; token=${where#*/}",
    # stdin held open a while: busybox nc may end at its input's end, before a slow answer came
    "req() { printf \"GET /$token/acMetadata/v1/$1 HTTP/1.0\\r\\n\\r\\n\"; }",
    "ask() { (req $1; sleep 2) | nc ${at%:*} ${at##*:}; }",
    "quick() { req $1 | nc ${at%:*} ${at##*:}; }",  # for the timing: ends with its input
    "echo MDS $(ask pod/uuid | tail -n 1)",
    "echo MANIFEST $(ask pod/manifest | wc -c)",
    "up() { cut -d' ' -f1 /proc/uptime; }",
    "for i in 1 2 3 4 5; do a=$(up); quick pod/uuid >/dev/null; echo LATENCY $a $(up); done",
    "mkdir -p /tmp/www && echo guest-says-hi > /tmp/www/index.html",
    "echo SERVING",
    "exec httpd -f -p 80 -h /tmp/www",
])  # fmt: skip


def wait_for(check: object, timeout: float = 180.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.3)
    return False


def get(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return b"".join(iter(lambda: client.recv(4096), b""))


def test_host_network_is_refused_before_anything_is_made(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    done = nspod("--stage1=kvm", "run", "--net=host", str(bb), "--exec=/bin/true")
    assert done.returncode == 254 and "cannot share the host's network stack" in done.stderr, done.stderr
    assert pods(nspod) == []


def test_a_kvm_pod_is_on_the_pods_network(nspod: Nspod, bb: Path, metadata_service: None) -> None:  # noqa: F811
    started = nspod("--stage1=kvm", "run", "--detach", "--mds-register", "-p", f"{HOST_PORT}:80",
                    str(bb), "--exec=/bin/sh", "--", "-c", APP, timeout=240)  # fmt: skip
    assert started.returncode == 0, started.stderr
    [pod] = pods(nspod)
    uuid, unit = str(pod["uuid"]), str(pod["unit"])

    def logs() -> str:
        return nspod("logs", uuid).stdout

    assert wait_for(lambda: "SERVING" in logs(), 120), logs()
    text = logs()
    net = json.loads(nspod("inspect", uuid).stdout)[0]
    print(text, json.dumps(net.get("networks"), indent=1))
    assert f"MDS {uuid}" in text, text
    print(
        "metadata service round trips (ms, nc in the guest):",
        [
            round(1000 * (float(w[-1]) - float(w[-2])))
            for w in (x.split() for x in text.splitlines())
            if "LATENCY" in w
        ],
    )
    assert "ROUTE default via" in text and "DNS " in text, text
    assert wait_for(lambda: b"guest-says-hi" in get_or_empty("127.0.0.1", HOST_PORT), 60)
    # kill -9 of QEMU: its unit's ExecStopPost takes the network down, gc the rest
    os.kill(int(prop(unit, "MainPID")), signal.SIGKILL)
    assert wait_for(lambda: pods(nspod)[0]["state"] == "exited", 60)
    assert nspod("gc", "--grace-period=0s").returncode == 0
    assert netns_name(uuid) not in subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    assert (
        table_name(uuid)
        not in subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    )
    assert not any(uuid in Path(PORTS_DIR, c).read_text() for c in os.listdir(PORTS_DIR) if c != ".lock")


def get_or_empty(host: str, port: int) -> bytes:
    try:
        return get(host, port)
    except OSError:
        return b""
