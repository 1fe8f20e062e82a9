"""The pod's network namespace as stage1/netns.py makes it: what ``ip netns add`` would have made
(listed, pinned on a shared /run/netns, loopback up, no duplicate address detection inside),
refused when it exists, and gone after ``ip netns delete``."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from stage1 import netns

pytestmark = pytest.mark.systemd


def _out(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_a_namespace_made_in_process_is_one_ip_knows() -> None:
    name = f"nspod-test-{uuid.uuid4().hex[:8]}"
    netns.create("/run/netns", name)
    try:
        assert name in _out("ip", "netns", "list").split()
        assert _out("findmnt", "-no", "PROPAGATION", "/run/netns").strip() == "shared"
        links = _out("ip", "-n", name, "-o", "link").splitlines()
        assert len(links) == 1 and links[0].split()[1] == "lo:" and ",UP," in links[0]
        dad = _out("ip", "netns", "exec", name, "cat", "/proc/sys/net/ipv6/conf/default/accept_dad")
        assert dad.strip() == "0"
        assert _out("cat", "/proc/sys/net/ipv6/conf/default/accept_dad").strip() == "1"  # the host's
        with pytest.raises(netns.NamespaceError) as caught:
            netns.create("/run/netns", name)
        assert "exists already" in caught.value.message and name in (caught.value.hint or "")
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)
    assert name not in _out("ip", "netns", "list").split()
    netns.delete(f"/run/netns/{name}")  # gone already: nothing to do
