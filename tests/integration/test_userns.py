"""--private-users (issue #11, item 5): the pod's root is an unprivileged host user, its files
are root's inside (ID-mapped mounts, nothing chowned), and two pods get disjoint ranges."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from stage1.abi import USERNS_SIZE
from tests.integration.test_confinement import probe_lines
from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd


def host_processes(argv: list[str]) -> list[int]:
    """The PIDs, on the host, of processes running exactly ``argv``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1] == [
                a.encode() for a in argv
            ]:
                found.append(int(entry))
        except OSError:
            continue
    return found


def uid_map(pid: int) -> tuple[int, int, int]:
    inside, outside, count = Path(f"/proc/{pid}/uid_map").read_text().split()
    return int(inside), int(outside), int(count)


def keyed(lines: list[str]) -> dict[str, str]:
    """Probe lines by key: "owner PATH UID GID" → {"owner PATH": "UID GID"}, "uid 0" → {"uid": "0"}."""
    found = {}
    for words in (line.split() for line in lines):
        if words and words[0] in ("owner", "create"):
            found[" ".join(words[:2])] = " ".join(words[2:])
        elif words:
            found[words[0]] = words[-1]
    return found


@dataclass(frozen=True)
class Seen:
    map: tuple[int, int, int]  # the app's /proc/PID/uid_map on the host
    host_uid: str  # the app's UID as the host sees it
    probe: dict[str, str]  # what the probe said inside


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, Seen]:
    """Two pods with --private-users, each an app sleeping for its own marker time."""
    base = tmp_path_factory.mktemp("userns")
    nspod = Nspod(base / "data")
    seen: dict[str, Seen] = {}
    try:
        for name, seconds in (("userns-a", "601"), ("userns-b", "602")):
            image = probe_image(base / name, probe, ["sleep", seconds], notify=False)
            ran = nspod("run", "--detach", "--private-users", f"--name={name}", "--volume=data,kind=empty",
                        str(image), "--mount=volume=data,target=/data")  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            (pid,) = host_processes(["/probe", "sleep", seconds])
            inside = nspod("enter", name, "--", "/probe", "report")
            owner = nspod("enter", name, "--", "/probe", "owner", "/probe", "/data")
            created = nspod("enter", name, "--", "/probe", "create", "/new", "/data/new")
            seen[name] = Seen(
                uid_map(pid),
                Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0],
                keyed(probe_lines(inside.stdout + owner.stdout + created.stdout)),
            )
    finally:
        for name in ("userns-a", "userns-b"):
            nspod("stop", name)
    return seen


def test_the_apps_root_is_an_unprivileged_host_user(pods: dict[str, Seen]) -> None:
    for seen in pods.values():
        inside, outside, count = seen.map
        assert (inside, count) == (0, USERNS_SIZE) and outside >= 0x80000, seen
        assert seen.host_uid == str(outside), seen  # the app runs as root inside, this outside
        assert seen.probe["uid"] == "0", seen


def test_two_pods_get_disjoint_ranges(pods: dict[str, Seen]) -> None:
    (_, a, count), (_, b, _) = pods["userns-a"].map, pods["userns-b"].map
    assert a + count <= b or b + count <= a, pods


def test_the_image_tree_is_roots_inside(pods: dict[str, Seen]) -> None:
    for seen in pods.values():
        assert (seen.probe["owner /probe"], seen.probe["owner /data"]) == ("0 0", "0 0"), seen


def test_the_app_writes_its_root_and_its_volume(pods: dict[str, Seen]) -> None:
    for seen in pods.values():
        assert (seen.probe["create /new"], seen.probe["create /data/new"]) == ("OK", "OK"), seen
