"""The store under concurrency and crashes: 10 fetches at once, and kill -9 at random moments."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.net.conftest import World, trust_good

pytestmark = pytest.mark.net


def consistent(home: Path) -> dict[str, set[str]]:
    """Check the store's invariants after it was opened once; returns what it holds."""
    root = home / "data/images"
    with sqlite3.connect(root / "index.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = {r[0] for r in db.execute("SELECT id FROM images")}
        remotes = {r[0] for r in db.execute("SELECT image_id FROM remotes")}
    blobs = {p.name for p in (root / "blobs").iterdir() if not p.name.endswith(".asc")}
    layers = {p.name for p in (root / "layers").iterdir()}
    assert blobs == rows == layers, (blobs, rows, layers)
    assert remotes <= rows
    for image_id in rows:
        assert (root / "layers" / image_id / "manifest").is_file()
        assert (root / "layers" / image_id / "rootfs").is_dir()
    assert list((root / "tmp").iterdir()) == []  # crash leftovers swept
    # what may remain in downloads/ is resumable state: one .part (+ .json) per URL, and lock files
    assert all(p.suffix in (".part", ".json", ".lock") for p in (root / "downloads").iterdir())
    return {"rows": rows}


def test_ten_concurrent_fetches(world: World, tmp_path: Path) -> None:
    trust_good(world, tmp_path)
    argv = world.argv("fetch", "example.com/busybox:1.0", home=tmp_path)
    processes = [
        subprocess.Popen(argv, env=world.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(10)
    ]
    results = [(*p.communicate(timeout=300), p.returncode) for p in processes]
    assert [code for _, _, code in results] == [0] * 10, [err for _, err, _ in results]
    assert {out.strip() for out, _, _ in results} == {world.images["example.com/busybox"]}
    world.nspod("image", "list", home=tmp_path)  # open once more: recovery must find nothing to do
    assert consistent(tmp_path)["rows"] == {world.images["example.com/busybox"]}


@pytest.mark.parametrize("source", ["https", "file"])
def test_kill_9_at_random_moments(world: World, tmp_path: Path, source: str) -> None:
    trust_good(world, tmp_path)
    image = world.path("example.com/big") if source == "file" else None
    target = str(image) if image else world.url("example.com/busybox")
    expected = world.images["example.com/big" if image else "example.com/busybox"]
    # time one whole fetch, then kill at moments spread over that span
    spans = []
    for attempt in range(3):  # the fastest of three whole fetches: kills before it are mid-flight
        home = tmp_path / f"probe{attempt}"
        trust_good(world, home)
        start = time.monotonic()
        assert world.nspod("fetch", target, home=home).returncode == 0
        spans.append(time.monotonic() - start)
    span = min(spans)
    rng = random.Random(20261129)
    runs, in_flight = 10, 0
    for run in range(runs):
        process = subprocess.Popen(
            world.argv("fetch", target, home=tmp_path),
            env=world.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, 0.8) * span)
        in_flight += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        if run % 3 == 2:  # now and then let a removal race the crashed state too
            world.nspod("image", "rm", expected, home=tmp_path)
        listed = world.nspod("image", "list", "--no-legend", home=tmp_path)
        assert listed.returncode == 0, listed.stderr
        consistent(tmp_path)
    assert in_flight >= runs // 2, f"only {in_flight} of {runs} kills hit a running fetch"
    final = world.nspod("fetch", target, home=tmp_path)
    assert final.returncode == 0, final.stderr
    assert consistent(tmp_path)["rows"] >= {expected}
    verified = world.nspod("image", "verify", expected, home=tmp_path)
    assert verified.returncode == 0 and "content matches its ID" in verified.stdout
