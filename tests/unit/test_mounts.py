"""stage0/host/mounts.py: which host mounts are a pod's (#23 item 18), read from mountinfo."""

from __future__ import annotations

import pytest

from stage0.host.mounts import below, mount_points, shared_at

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /var/lib/nspod/pods/run/u1/overlay/web/root rw shared:40 - overlay overlay rw
91 22 8:1 /srv/my\\040data /var/lib/nspod/pods/run/u1/stage1/with\\040space rw - ext4 /dev/sda1 rw
92 90 0:51 / /var/lib/nspod/pods/run/u1/overlay/web/root/proc rw - proc proc rw
93 22 0:52 / /var/lib/nspod/pods/run/u10/overlay/x/root rw - overlay overlay rw
"""


def test_mount_points_are_unescaped() -> None:
    points = mount_points(MOUNTINFO)
    assert points[2] == "/var/lib/nspod/pods/run/u1/stage1/with space"
    assert len(points) == 5


def test_below_is_the_pods_alone_deepest_first() -> None:
    found = below(mount_points(MOUNTINFO), "/var/lib/nspod/pods/run/u1/")
    assert found == [
        "/var/lib/nspod/pods/run/u1/overlay/web/root/proc",
        "/var/lib/nspod/pods/run/u1/overlay/web/root",
        "/var/lib/nspod/pods/run/u1/stage1/with space",
    ]  # not u10's, whose name only starts alike
    assert below(mount_points(MOUNTINFO), "/srv") == []


SHARING = "\n".join((
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
    "30 22 0:5 / /tmp rw shared:5 - tmpfs tmpfs rw",
    "31 30 254:0 /tmp/h/mnt /tmp/h/mnt rw,relatime shared:30 master:1 - ext4 /dev/vda rw",
    "32 30 254:0 /tmp/p/mnt /tmp/p/mnt rw,relatime - ext4 /dev/vda rw",
    "33 32 254:0 /tmp/p/mnt /tmp/p/mnt rw,relatime master:9 - ext4 /dev/vda rw",
    "34 30 254:0 /tmp/s\\040p /tmp/s\\040p rw shared:40 - ext4 /dev/vda rw",
))  # fmt: skip


@pytest.mark.parametrize(
    ("path", "shared"),
    [
        ("/tmp/h/mnt", True),
        ("/tmp/h/mnt/deeper", True),
        ("/tmp/h/mntx", True),  # not below /tmp/h/mnt: /tmp's, shared too
        ("/tmp/p/mnt", False),  # the last mounted at the point, a slave, is what a path lies on
        ("/tmp/s p/x", True),
        ("/usr", True),
    ],
)
def test_a_path_is_shared_as_the_mount_it_lies_on(path: str, shared: bool) -> None:
    assert shared_at(SHARING, path) is shared
    assert not shared_at(SHARING.replace(" shared:30", ""), "/tmp/h/mnt")
