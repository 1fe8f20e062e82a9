"""Members of group nspod read pods and images without root, and can change nothing; others are told
which group to join (stage0/host/access.py). Root runs a pod; uid 65534 with and without the group looks."""

from __future__ import annotations

import grp
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
NOBODY = 65534
INSTALLED = "/usr/local/bin/nspod"


@pytest.fixture(autouse=True)
def installed() -> None:
    if not os.access(INSTALLED, os.X_OK):
        pytest.fail(f"no {INSTALLED}: run 'make install' (readers run the installed nspod)")


@pytest.fixture
def gid() -> int:
    try:
        return grp.getgrnam("nspod").gr_gid
    except KeyError:
        pytest.fail("no group nspod: 'make install' makes it (units/sysusers.d/nspod.conf)")


@pytest.fixture
def nspod(gid: int) -> Iterator[Nspod]:
    """A data dir as the package's tmpfiles.d makes /var/lib/nspod: root's, group nspod, 2750 —
    under a directory everyone may pass (pytest's own are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="nspod-readers-", dir="/var/tmp"))
    top.chmod(0o755)
    data = top / "data"
    data.mkdir()
    os.chown(data, 0, gid)
    data.chmod(0o2750)
    tool = Nspod(data)
    yield tool
    for pod in json.loads(tool("list", "--format", "json").stdout or "[]"):
        tool("stop", "--force", pod["uuid"])
        tool("rm", pod["uuid"])
    shutil.rmtree(top)


def as_user(nspod: Nspod, groups: list[int], *args: str) -> subprocess.CompletedProcess[str]:
    """The installed nspod (``make install``: this checkout's code) as uid 65534: the checkout
    itself may be where others cannot read it (/root/…)."""
    setpriv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}"]
    setpriv += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    argv = [INSTALLED, "--dir", str(nspod.data), *args]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/"}
    return subprocess.run([*setpriv, *argv], capture_output=True, text=True, timeout=60, env=env, cwd="/")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under the data dir but the pods' own trees, with its size and mtime."""
    seen = {}
    for path in root.rglob("*"):
        if "stage1" in path.parts or "status" in path.parts or "io" in path.parts:
            continue
        info = path.lstat()
        seen[str(path)] = (info.st_size, info.st_mtime_ns)
    return seen


def test_members_read_and_change_nothing(nspod: Nspod, bb: Path, gid: int) -> None:  # noqa: F811
    ran = nspod("run", "--detach", str(bb), "--exec=/bin/sleep", "--", "600")
    assert ran.returncode == 0, ran.stderr
    uuid = json.loads(nspod("list", "--format", "json").stdout)[0]["uuid"]
    before = snapshot(nspod.data)

    listed = as_user(nspod, [gid], "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [(p["uuid"], p["state"]) for p in json.loads(listed.stdout)] == [(uuid, "running")]
    status = as_user(nspod, [gid], "status", uuid)
    assert status.returncode == 0 and "exited=false" in status.stdout, status.stderr
    images = as_user(nspod, [gid], "image", "list", "--format", "json")
    assert images.returncode == 0, images.stderr
    names = [i["name"] for i in json.loads(images.stdout)]
    assert len(names) == 1
    manifest = as_user(nspod, [gid], "cat-manifest", uuid)
    assert json.loads(manifest.stdout)["acKind"] == "PodManifest", manifest.stderr
    image_manifest = as_user(nspod, [gid], "image", "cat-manifest", names[0])
    assert json.loads(image_manifest.stdout)["acKind"] == "ImageManifest", image_manifest.stderr

    for verb in (["stop", uuid], ["rm", uuid], ["gc"], ["image", "rm", names[0]], ["fetch", str(bb)]):
        refused = as_user(nspod, [gid], *verb)
        assert refused.returncode == 254, (verb, refused.stderr)
        said = " ".join(verb[:2] if verb[0] == "image" else verb[:1])
        assert refused.stderr.splitlines()[0] == f"nspod: 'nspod {said}' needs root ({nspod.data} is root's)"
        assert "group nspod may read" in refused.stderr
    assert snapshot(nspod.data) == before, "a reader changed the data dir"
    assert nspod.status(uuid)["exited"] == "false"

    journal = as_user(nspod, [gid], "logs", uuid)
    assert journal.returncode == 254 and "group systemd-journal" in journal.stderr


def test_others_are_told_the_group(nspod: Nspod, bb: Path) -> None:  # noqa: F811
    assert nspod("fetch", str(bb)).returncode == 0
    for verb in (["list"], ["image", "list"], ["status", "x"]):
        refused = as_user(nspod, [], *verb)
        assert refused.returncode == 254, refused.stderr
        first, hint = refused.stderr.splitlines()
        assert first == f"nspod: cannot read {nspod.data}: permission denied (not a member of group nspod)"
        assert hint.strip().startswith("hint: reading pods and images without root needs group nspod")
