"""A full disk is said as such, never as damage, and leaves nothing half-written (issue #23
item 23): the data dir is a small tmpfs mounted in the test sandbox's own mount namespace; an
HTTPS fetch, a file import and the index each hit ENOSPC, then space is freed (the tmpfs grown,
a filler removed) and the same command works."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.net.conftest import World, trust_good
from tests.net.test_store_stress import consistent

pytestmark = pytest.mark.net
FULL = re.compile(r"^nspod: no space left on \S+ \((\d+) bytes free\)\n  hint: free space there", re.M)


@pytest.fixture
def small(world: World, tmp_path: Path) -> Iterator[None]:
    """``tmp_path``'s data dir on a 4 MiB tmpfs (the sandbox's mount: the host never sees it)."""
    trust_good(world, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    mounted = world.sandbox.run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0750", "tmpfs", str(data))
    assert mounted.returncode == 0, mounted.stderr
    yield
    world.sandbox.run("umount", str(data))


def rows(world: World, home: Path) -> set[str]:
    """The store's images, once its invariants are checked (in the sandbox, where the tmpfs is)."""
    check = (
        f"import json, pathlib, {consistent.__module__} as t; "
        f"print(json.dumps(sorted(t.consistent(pathlib.Path({str(home)!r}))['rows'])))"
    )
    done = world.sandbox.run(sys.executable, "-c", check, env=world.env())
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def resize(world: World, home: Path, size: str) -> None:
    done = world.sandbox.run("mount", "-o", f"remount,size={size}", str(home / "data"))
    assert done.returncode == 0, done.stderr


def said_full(stderr: str) -> int:
    """The bytes free the message names."""
    found = FULL.search(stderr)
    assert found, stderr
    assert "corrupt" not in stderr and "damaged" not in stderr and "internal error" not in stderr
    return int(found[1])


@pytest.mark.parametrize("source", ["https", "file"])
def test_a_fetch_on_a_full_disk(world: World, tmp_path: Path, small: None, source: str) -> None:
    big = "example.com/big"  # 12 MiB of random data: it cannot fit
    target = world.url(big) if source == "https" else str(world.path(big))
    full = world.nspod("fetch", target, home=tmp_path)
    assert full.returncode == 254
    said_full(full.stderr)
    assert rows(world, tmp_path) == set()  # nothing half-written: no row, blob, tree or lock
    resize(world, tmp_path, "64m")  # space freed
    again = world.nspod("fetch", target, home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert rows(world, tmp_path) == {world.images[big]}
    verified = world.nspod("image", "verify", world.images[big], home=tmp_path)
    assert verified.returncode == 0 and "content matches its ID" in verified.stdout


def test_the_index_on_a_full_disk(world: World, tmp_path: Path, small: None) -> None:
    """SQLite says "disk I/O error" when its shared-memory file cannot grow: still a full disk."""
    resize(world, tmp_path, "16m")  # room for two busybox images, once the filler goes
    assert world.nspod("fetch", "example.com/busybox:1.0", home=tmp_path).returncode == 0
    filler = tmp_path / "data" / "filler"
    world.sandbox.run("dd", "if=/dev/zero", f"of={filler}", "bs=64k")
    for verb in (("image", "list"), ("fetch", "example.com/base:1.0")):
        full = world.nspod(*verb, home=tmp_path)
        assert full.returncode == 254, full.stderr
        assert said_full(full.stderr) < 1 << 20
    world.sandbox.run("rm", str(filler))
    assert world.nspod("fetch", "example.com/base:1.0", home=tmp_path).returncode == 0
    assert rows(world, tmp_path) == {world.images["example.com/busybox"], world.images["example.com/base"]}
