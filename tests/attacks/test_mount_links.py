"""Issue #23, item 1: an image's links at a mount point must not move the user's volume out of the
app's root. The original exploit: ``/data -> /nspod/bin`` put the volume onto stage1's programs,
and the pod's systemd ran the volume's ``reaper`` as pod root when the app ended. Each link shape
below either lands the volume inside the app's own root (the app finds its data through its own
path) or is refused (the pod ends with 254) — and never is the volume mounted anywhere else in the
pod, nor its ``reaper`` run (a marker it would write never appears on the host)."""

from __future__ import annotations

import json
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


def attack_volume(tmp_path: Path, case: str) -> Path:
    """The user's volume: their data, and the payload a misplaced mount would let the pod run.
    Writable by all: the pod's root is a host user of its own with --private-users (item 2)."""
    volume = tmp_path / f"vol-{case}"
    volume.mkdir()
    volume.chmod(0o777)
    (volume / "given").write_text("the user's data\n")
    (volume / "reaper").write_text(PAYLOAD)
    (volume / "reaper").chmod(0o755)
    return volume


def linked_image(tmp_path: Path, case: str) -> Path:
    """An image whose app copies its data from where it looks for it back into the volume."""
    links, mount_point, seen_at = CASES[case]
    look = seen_at if isinstance(seen_at, str) else mount_point
    return attack_image(
        tmp_path,
        # runs until the test has read the pod's mounts (it writes "done"), 30 s at most
        [
            "/bin/sh",
            "-c",
            f"cat {look}/given > {look}/seen; i=0; "
            f"while [ ! -e {look}/done ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done",
        ],
        links=links,
        app={"mountPoints": [{"name": "data", "path": mount_point}]},
    )


def check(volume: Path, mounts: list[tuple[str, str]], refused: bool, app: str = "attack") -> None:
    """No payload ran, the volume is mounted nowhere but nspod's staging place and the app's root,
    and the app found its data through its own path unless nspod refused."""
    assert not (volume / "pwned").exists(), (volume / "pwned").read_text()
    outside = [
        p for root, p in mounts if root.endswith(volume.name) and not p.startswith(f"/opt/stage2/{app}/")
    ]
    assert outside == [], mounts
    if refused:
        assert not (volume / "seen").exists()
    else:
        assert (volume / "seen").read_text() == "the user's data\n"
        assert mounts, "the app found its data, yet the pod's mounts were not read"


def wait_for(volume: Path, machine: str, deadline: float) -> list[tuple[str, str]]:
    """The pod's mounts once the app has copied its data (while it runs); none if it never did."""
    while time.monotonic() < deadline and not gone(machine):
        if (volume / "seen").exists():
            mounts = pod_mounts(machine)
            (volume / "done").touch()  # the app may end now (a loaded machine read them late)
            return mounts
        time.sleep(0.1)
    return []


def ended(nspod: Nspod, uuid: str, volume: Path, deadline: float) -> None:  # noqa: F811
    """Until the app's reaper has recorded its end, or the payload ran in its place."""
    while time.monotonic() < deadline and not (volume / "pwned").exists():
        listed = nspod("app", "status", uuid, "--app=attack", "--format=json")
        if listed.returncode == 0 and json.loads(listed.stdout).get("state") == "exited":
            return
        time.sleep(0.1)


VARIANTS = {"plain": (), "private-users": ("--private-users",), "readonly-rootfs": ("--readonly-rootfs",)}
RUNS = [(c, "plain") for c in sorted(CASES)] + [
    (c, v) for c in ("absolute-link", "link-in-a-parent", "link-to-root") for v in VARIANTS if v != "plain"
]


@pytest.mark.parametrize(("case", "variant"), RUNS)
def test_a_link_at_a_mount_point_stays_in_the_apps_root(
    nspod: Nspod,  # noqa: F811
    tmp_path: Path,
    case: str,
    variant: str,
) -> None:
    volume, image = attack_volume(tmp_path, case), linked_image(tmp_path, case)
    machine = f"links-{case}"[:60]
    pod_flags, app_flags = (
        (VARIANTS[variant], ()) if variant != "readonly-rootfs" else ((), VARIANTS[variant])
    )
    ran = nspod("run", "--detach", f"--name={machine}", *pod_flags,
                f"--volume=data,kind=host,source={volume}", str(image), *app_flags)  # fmt: skip
    deadline = time.monotonic() + 60
    mounts = wait_for(volume, machine, deadline)
    while time.monotonic() < deadline and not gone(machine):  # the app ends, and its reaper runs
        time.sleep(0.2)
    expected = CASES[case][2]
    # a pod that did not start at all says so, not as a missing file
    assert isinstance(expected, int) or (volume / "seen").exists(), (ran.returncode, ran.stdout, ran.stderr)
    check(volume, mounts, refused=isinstance(expected, int))
    assert gone(machine), "the pod did not end"
    assert ran.returncode == (expected if isinstance(expected, int) else 0), (ran.returncode, ran.stderr)


@pytest.mark.parametrize("case", ["absolute-link", "chain-of-links", "link-to-root"])
def test_an_app_added_to_a_sandbox_gets_its_volume_in_its_root(
    nspod: Nspod,  # noqa: F811
    tmp_path: Path,
    case: str,
) -> None:
    """The same through ``nspod app add`` (machined's BindMountMachine, into a running pod)."""
    volume, image = attack_volume(tmp_path, case), linked_image(tmp_path, case)
    made = nspod("app", "sandbox", f"--volume=data,kind=host,source={volume}")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    machine = f"nspod-{uuid}"
    try:
        added = nspod("app", "add", uuid, str(image))
        assert added.returncode == 0, added.stderr
        started = nspod("app", "start", uuid, "--app=attack")
        # a refused app never runs: 5 s for one that ran all the same to show it
        mounts = wait_for(volume, machine, time.monotonic() + (30 if started.returncode == 0 else 5))
        if started.returncode == 0:  # the app ends, and its reaper runs (or the payload, if it can)
            ended(nspod, uuid, volume, time.monotonic() + 30)
        removed = nspod("app", "rm", uuid, "--app=attack")
        assert removed.returncode == 0, removed.stderr
        check(volume, mounts, refused=isinstance(CASES[case][2], int))
        assert (started.returncode != 0) == isinstance(CASES[case][2], int), started.stderr
        assert ("cannot be mounted inside its root" in started.stderr) == (started.returncode != 0)
        leftover = [p for root, p in pod_mounts(machine) if root.endswith(volume.name)]
        assert leftover == ["/opt/stage2/attack/volumes/0"] or leftover == [], leftover
    finally:
        nspod("stop", uuid)
        nspod("rm", uuid)


def test_a_refused_mount_point_says_why(nspod: Nspod, tmp_path: Path) -> None:  # noqa: F811
    """In the foreground the pod's refusal is one line and a hint, and nspod's own exit code."""
    volume, image = attack_volume(tmp_path, "link-to-root"), linked_image(tmp_path, "link-to-root")
    ran = nspod("run", f"--volume=data,kind=host,source={volume}", str(image))
    assert ran.returncode == 254, ran
    said = ran.stdout + ran.stderr
    assert "cannot mount a volume at /data" in said and "resolves to /, the app's root" in said, said
    assert "hint: a mount point (and every link on its way) must lead to a place inside" in said, said
