"""Issue #23, item 1, the time of check and the time of use: a second app of the same pod races the
resolution of a mount point. Both apps share a volume; the victim mounts the user's volume below
it (``/v/sub``). While the victim is added and started in a running app sandbox, the racer swaps
``sub`` between a directory and links out of the app's root as fast as it can. Whatever the race
gives, the user's volume is mounted nowhere but inside the victim's root (or nspod's own staging
place), and its ``reaper`` never runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image, nspod  # noqa: F401  (fixture)
from tests.attacks.test_mount_links import attack_volume, pod_mounts

pytestmark = pytest.mark.systemd

# the racer: the shared volume's "sub" is by turns a directory, an absolute link to stage1's
# programs and a relative one climbing out of any app's root
RACE = """
touch /v/racing
while [ -e /v/racing ]; do
    rm -rf /v/sub; ln -s /nspod/bin /v/sub; rm -f /v/sub
    ln -s ../../../../../nspod/bin /v/sub; rm -f /v/sub; mkdir /v/sub
done
"""


def test_a_second_app_cannot_race_a_mount_out_of_the_apps_root(nspod: Nspod, tmp_path: Path) -> None:  # noqa: F811
    volume = attack_volume(tmp_path, "race")
    racer = attack_image(tmp_path / "racer", ["/bin/sh", "-c", RACE], name="example.com/racer",
                         app={"mountPoints": [{"name": "shared", "path": "/v"}]})  # fmt: skip
    victim = attack_image(
        tmp_path / "victim",
        ["/bin/sh", "-c", "cat /v/sub/given > /v/sub/seen; sleep 2"],
        name="example.com/victim",
        app={"mountPoints": [{"name": "shared", "path": "/v"}, {"name": "data", "path": "/v/sub"}]},
    )
    made = nspod("app", "sandbox", "--volume=shared,kind=empty,mode=0777",
                 f"--volume=data,kind=host,source={volume}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    machine = f"nspod-{uuid}"
    tries = []
    try:
        assert nspod("app", "add", uuid, str(racer)).returncode == 0
        assert nspod("app", "start", uuid, "--app=racer").returncode == 0
        time.sleep(1)  # racing
        for _ in range(5):  # each try resolves anew: add, start, look, remove
            assert nspod("app", "add", uuid, str(victim)).returncode == 0
            started = nspod("app", "start", uuid, "--app=victim")
            time.sleep(0.5)
            tries.append((started.returncode, pod_mounts(machine)))
            assert nspod("app", "rm", uuid, "--app=victim").returncode == 0
    finally:
        nspod("stop", uuid)
        nspod("rm", uuid)
    assert not (volume / "pwned").exists(), (volume / "pwned").read_text()
    for _, mounts in tries:
        outside = [
            p for root, p in mounts if root.endswith(volume.name) and not p.startswith("/opt/stage2/victim/")
        ]
        assert outside == [], mounts
    # the race was run: the victim's volume was mounted (inside its root) at least once
    assert any(
        p.startswith("/opt/stage2/victim/rootfs/") for _, m in tries for r, p in m if r.endswith(volume.name)
    )
