"""A pod's network leaves nothing behind (issue #12, item 4): 50 pods with forwarded ports started,
used and removed (5 at a time), and 10 pods whose nspawn was killed with SIGKILL then gc'ed; every
link, address, route, namespace, rule, IPAM lease, port claim and proxy unit is listed before and
after and must be the same. (A network's masquerading is the host's, made by its first pod and
kept: it is in both lists.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_network import Net, fetch, web_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd
RUNTIME = Path("/run/nspod/net")
SHARED_DIRS = {RUNTIME / "ports", RUNTIME / "unit"}  # made once, kept: only what is in them counts


def _lines(*argv: str) -> list[str]:
    return sorted(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines())


def leftovers() -> dict[str, object]:
    """Everything on the host a pod's network can leave."""
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    leases = sorted(
        str(path.relative_to(RUNTIME))
        for path in (RUNTIME / "ipam").rglob("*")
        if path.is_file() and path.name != "lock" and not path.name.startswith("last_reserved_ip")
    )
    runtime = sorted(
        str(p.relative_to(RUNTIME))
        for p in RUNTIME.rglob("*")
        if "ipam" not in p.parts and p.name != ".lock" and p not in SHARED_DIRS
    )
    units = [  # the pods' units; the metadata service's are the host's
        u
        for u in _lines("systemctl", "list-units", "--all", "--plain", "--no-legend", "nspod-*")
        if not u.startswith("nspod-metadata")
    ]
    return {
        "links": _lines("ip", "-o", "link"),
        "addresses": [re.sub(r"\s+valid_lft.*", "", line) for line in _lines("ip", "-o", "addr")],
        "routes": _lines("ip", "route") + _lines("ip", "-6", "route"),
        "netns": _lines("ip", "netns", "list"),
        "nft": re.sub(r"counter packets \d+ bytes \d+", "counter", ruleset),
        "leases": leases,
        "runtime": runtime,
        "units": units,
        "route_localnet": [  # set for forwarded ports (issue #23, item 3): it must go with the pod
            p.parent.name
            for p in Path("/proc/sys/net/ipv4/conf").glob("*/route_localnet")
            if p.read_text() != "0\n"
        ],
    }


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Net:
    base = tmp_path_factory.mktemp("netclean")
    (base / "conf").mkdir()
    net = Net(Nspod(base / "data"), base / "conf", web_image(base))
    # the default net's masquerading is made once and kept (stage1/nat.py): before any snapshot
    assert net.sh("true").returncode == 0
    return net


def test_fifty_pods_started_used_and_removed_leave_nothing(net: Net) -> None:
    before = leftovers()

    def worker(index: int) -> list[str]:
        failures = []
        port = 19100 + index
        for _ in range(10):
            ran = net("run", "--detach", f"--port=http:{port}", str(net.image))
            if ran.returncode != 0:
                failures.append(ran.stderr)
                continue
            uuid = ran.stdout.strip()
            try:
                if fetch(f"http://127.0.0.1:{port}/index.html") != "hello-from-pod\n":
                    failures.append(f"{uuid}: wrong answer")
            except OSError as error:
                failures.append(f"{uuid}: {error}")
            for verb in ("stop", "rm"):
                done = net(verb, uuid)
                if done.returncode != 0:
                    failures.append(f"{verb} {uuid}: {done.stderr}")
        return failures

    with ThreadPoolExecutor(5) as pool:
        failures = [f for result in pool.map(worker, range(5)) for f in result]
    assert failures == []
    assert leftovers() == before


def test_ten_pods_killed_then_gced_leave_nothing(net: Net) -> None:
    before = leftovers()
    uuids = []
    for index in range(10):
        ran = net("run", "--detach", f"--port=http:{19200 + index}", str(net.image))
        assert ran.returncode == 0, ran.stderr
        uuids.append(ran.stdout.strip())
    for uuid in uuids:
        pid = int(net.status(uuid)["pid"])  # type: ignore[call-overload]
        os.kill(pid, signal.SIGKILL)  # the pod's nspawn, started by this test
    deadline = time.monotonic() + 60
    while any(net.status(u)["state"] == "running" for u in uuids):
        assert time.monotonic() < deadline, "killed pods still read running"
        time.sleep(0.2)
    for _ in range(2):  # mark as garbage, then remove
        done = net("gc", "--grace-period=0s")
        assert done.returncode == 0, done.stderr
    assert net("list", "--no-legend").stdout.strip() == ""
    assert leftovers() == before
