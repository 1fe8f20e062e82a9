"""Issue #23, item 1: an image's links at a mount point must not move the user's volume out of the
app's root. The original exploit: ``/data -> /nspod/bin`` put the volume onto stage1's programs,
and the pod's systemd ran the volume's ``reaper`` as pod root when the app ended. Each link shape
below either lands the volume inside the app's own root (the app finds its data through its own
path) or is refused (the pod ends with 254) — and never is the volume mounted anywhere else in the
pod, nor its ``reaper`` run (a marker it would write never appears on the host)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image, nspod  # noqa: F401  (fixture)

pytestmark = pytest.mark.systemd

# the payload: run by the pod's systemd as /nspod/bin/reaper if the volume lands there, it leaves
# its mark in the volume, which the host sees
PAYLOAD = '#!/bin/sh\necho "pwned by $(id -u)" > "$(dirname "$0")/pwned"\n'

# case → (links in the image, the manifest's mount point, where the app looks for its data, or
# the exit code nspod refuses with: 254 from stage1, 2 for a manifest stage0 rejects)
CASES: dict[str, tuple[dict[str, str], str, str | int]] = {
    "absolute-link": ({"data": "/nspod/bin"}, "/data", "/data"),
    "relative-dotdot-link": ({"data": "../../../../nspod/bin"}, "/data", "/data"),
    "link-in-a-parent": ({"a": "/nspod"}, "/a/bin", "/a/bin"),
    "chain-of-links": ({"x": "y", "y": "../../../../z", "z": "/nspod"}, "/x/bin", "/x/bin"),
    "dotdot-in-the-manifest-path": ({}, "/../../../../nspod/bin", 2),
    "link-to-the-pods-status": ({"data": "../../../../nspod/status"}, "/data", "/data"),
    "link-to-root": ({"data": "/"}, "/data", 254),
    "link-to-proc": ({"data": "/proc/self"}, "/data", 254),
    "link-to-dev": ({"data": "../dev/shm"}, "/data", 254),
}


def pod_mounts(machine: str) -> list[tuple[str, str]]:
    """(root in its file system, mount point) of every mount in the pod's namespace."""
    leader = subprocess.run(
        ["machinectl", "show", machine, "--property=Leader", "--value"], capture_output=True, text=True
    ).stdout.strip()
    if not leader:
        return []
    lines = Path(f"/proc/{leader}/mountinfo").read_text().splitlines()
    return [(line.split()[3], line.split()[4]) for line in lines]


def gone(machine: str) -> bool:
    return subprocess.run(["machinectl", "show", machine], capture_output=True).returncode != 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_link_at_a_mount_point_stays_in_the_apps_root(nspod: Nspod, tmp_path: Path, case: str) -> None:  # noqa: F811
    links, mount_point, seen_at = CASES[case]
    volume = tmp_path / f"vol-{case}"
    volume.mkdir()
    (volume / "given").write_text("the user's data\n")
    (volume / "reaper").write_text(PAYLOAD)
    (volume / "reaper").chmod(0o755)
    look = seen_at if isinstance(seen_at, str) else mount_point
    image = attack_image(
        tmp_path,
        ["/bin/sh", "-c", f"cat {look}/given > {look}/seen; sleep 3"],
        links=links,
        app={"mountPoints": [{"name": "data", "path": mount_point}]},
    )
    machine = f"links-{case}"[:60]
    ran = nspod(
        "run", "--detach", f"--name={machine}", f"--volume=data,kind=host,source={volume}", str(image)
    )
    mounts: list[tuple[str, str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not gone(machine):
        if (volume / "seen").exists():
            mounts = pod_mounts(machine)  # while the app runs
            break
        time.sleep(0.1)
    while time.monotonic() < deadline and not gone(machine):  # the app ends, and its reaper runs
        time.sleep(0.2)
    assert gone(machine), "the pod did not end"
    assert not (volume / "pwned").exists(), (volume / "pwned").read_text()
    outside = [
        point
        for root, point in mounts
        if root.endswith(volume.name) and not point.startswith("/opt/stage2/attack/")
    ]
    assert outside == [], mounts
    if isinstance(seen_at, int):
        assert ran.returncode == seen_at, (ran.returncode, ran.stderr)
        assert not (volume / "seen").exists()
    else:
        assert ran.returncode == 0, ran.stderr
        assert (volume / "seen").read_text() == "the user's data\n"
        assert mounts, "the app found its data, yet the pod's mounts were not read"
