"""The pod's network namespace as stage1/netns.py makes it: what ``ip netns add`` would have made
(listed, pinned on a shared /run/netns, loopback up, no duplicate address detection inside),
refused when it exists, and gone after ``ip netns delete``."""

from __future__ import annotations

import subprocess
import time
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
        # the topmost mount (one the machine's own /run/netns left below a test host's /run may show too)
        assert _out("findmnt", "-no", "PROPAGATION", "/run/netns").split()[-1] == "shared"
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


def test_pods_starting_at_once_share_one_mount_of_the_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # each creator finds the directory no mount point yet: without a lock they stacked their binds
    import sys

    from tests.conftest import REPO

    directory = f"/run/nspod-test-netns-{uuid.uuid4().hex[:8]}"
    names = [f"n{i}" for i in range(8)]
    # each imports, then waits on its stdin: all create at the same moment
    code = "import sys; from stage1 import netns; sys.stdin.read(1); netns.create(sys.argv[1], sys.argv[2])"
    env = {"PYTHONPATH": str(REPO)}
    creators = [
        subprocess.Popen([sys.executable, "-c", code, directory, n], env=env, stdin=subprocess.PIPE)
        for n in names
    ]
    try:
        time.sleep(1.0)
        for creator in creators:
            assert creator.stdin is not None
            creator.stdin.close()
        assert [c.wait(timeout=60) for c in creators] == [0] * len(names)
        assert _out("findmnt", "-no", "PROPAGATION", directory).split() == ["shared"]
    finally:
        for name in names:
            netns.delete(f"{directory}/{name}")
        subprocess.run(["umount", "-R", directory], check=False)
        subprocess.run(["rmdir", directory], check=False)
