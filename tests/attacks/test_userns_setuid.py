"""Issue #23, item 2: a ``--private-users`` pod's root must be an unprivileged host user everywhere.
Volumes were ID-mapped (uid 0 inside was uid 0 on disk), so ``cp /bin/x /data/ && chmod 4755``
in the pod left a setuid-root program on the host. The attacker's app, root in the pod, plants a
setuid copy of busybox in every directory it can write (its root's writable layer, an empty and a
host volume, /tmp, …); the host then finds none owned by uid 0, and each owned by the pod's range.
A volume that is to be shared with host root's IDs says so (``idmap=true``), and only it is."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from stage1.abi import USERNS_SIZE
from tests.attacks.conftest import Nspod, attack_image, nspod  # noqa: F401  (fixture)

pytestmark = pytest.mark.systemd

PLANTED = ".planted-suid"
# every directory of the app's root it can write, and its volumes; not /dev and /run, the app's
# own memory file systems (systemd's MountAPIVFS=), which no host file system holds
PLANT = f"""
for d in $(find / -xdev -type d 2>/dev/null) /data /host /shared; do
    case "$d" in /dev|/dev/*|/run|/run/*|/proc|/proc/*|/sys|/sys/*) continue;; esac
    cp /bin/busybox "$d/{PLANTED}" 2>/dev/null && chown 0:0 "$d/{PLANTED}" && chmod 4755 "$d/{PLANTED}" &&
        echo "planted $d"
done
true
"""


def planted(*trees: Path) -> dict[str, os.stat_result]:
    """Every planted file under ``trees``, found from the host."""
    found = {}
    for tree in trees:
        for directory, _, files in os.walk(tree):
            if PLANTED in files:
                path = os.path.join(directory, PLANTED)
                found[path] = os.lstat(path)
    return found


def pod_range(data: Path) -> int:
    """The first host UID of the (only) pod's range, from its spec."""
    (spec,) = data.glob("pods/*/*/pod.json")
    first = json.loads(spec.read_text())["private_users"]
    assert isinstance(first, int)
    return first


def test_the_pods_root_plants_no_host_root_files(nspod: Nspod, tmp_path: Path) -> None:  # noqa: F811
    host, shared = tmp_path / "host-volume", tmp_path / "shared-volume"
    for directory in (host, shared):
        directory.mkdir()
        directory.chmod(0o777)  # the pod's root, a host user of its own, may write them
    links = {"/bin/find": "busybox", "/bin/chown": "busybox"}
    image = attack_image(tmp_path, ["/bin/sh", "-c", PLANT], links=links, files={"/tmp/.keep": ""})
    ran = nspod(
        "run", "--private-users", "--volume=data,kind=empty", f"--volume=host,kind=host,source={host}",
        f"--volume=shared,kind=host,source={shared},idmap=true", str(image),
        "--mount=volume=data,target=/data", "--mount=volume=host,target=/host",
        "--mount=volume=shared,target=/shared",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    places = {line.split()[-1] for line in ran.stdout.splitlines() if "planted" in line}
    assert {"/", "/tmp", "/data", "/host", "/shared"} <= places, ran.stdout
    first = pod_range(nspod.data)
    found = planted(nspod.data, host, shared)
    assert len(found) >= len(places), (sorted(found), places)
    shared_copy = str(shared / PLANTED)
    for path, seen in found.items():
        if path == shared_copy:  # asked for: the pod's root is host root on this volume alone
            assert seen.st_uid == 0 and seen.st_mode & stat.S_ISUID, path
            continue
        assert first <= seen.st_uid < first + USERNS_SIZE and seen.st_uid == first, (path, seen.st_uid)
        assert first <= seen.st_gid < first + USERNS_SIZE, (path, seen.st_gid)
    roots = [p for p, s in found.items() if s.st_uid == 0 and p != shared_copy]
    assert roots == []
