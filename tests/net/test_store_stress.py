"""The store under concurrency and crashes: 10 fetches at once, 1,000 fetches of new images in
parallel, kill -9 at random moments and at the moments that matter (issue #23 item 19)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stage0.images.aci.build import build_aci
from tests.net.conftest import World, _layout, trust_good

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
    assert list((root / "locks").iterdir()) == []  # each lock file goes with its last holder
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


def _publish_many(world: World, count: int, files: int) -> list[str]:
    """``count`` new signed images of ``files`` files each (the shape of the report: 210)."""
    names = []
    for number in range(count):
        name = f"example.com/many{number}"
        if not world.path(name).exists():
            extra = {f"data/f{i:03}": f"{name} {i}\n".encode() for i in range(files - 2)}
            layout = _layout(world.dir / "build" / f"many{number}", name, extra=extra)
            world.path(name).parent.mkdir(parents=True, exist_ok=True)
            world.images[name] = build_aci(str(layout), str(world.path(name)))
            world.gpg.sign(world.keys["good"], world.path(name))
        names.append(name)
    return names


def test_a_thousand_parallel_fetches_of_new_images(world: World, tmp_path: Path) -> None:
    """Rounds of 40 fetches at once, each of another new image, into a fresh store: every fetch
    opens the store (sweeping tmp/ and the lock files) while the others import theirs. 1,000
    fetches (25 rounds) must all succeed."""
    fetches = int(os.environ.get("NSPOD_STRESS_FETCHES", "1000"))
    names = _publish_many(world, 40, 210)
    pipes: dict[str, Any] = {
        "env": world.env(),
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
    }
    failures: list[str] = []
    elapsed = 0.0
    for round_ in range(max(1, fetches // len(names))):
        home = tmp_path / f"round{round_}"
        trust_good(world, home)
        start = time.monotonic()
        running = [(n, subprocess.Popen(world.argv("fetch", n + ":1.0", home=home), **pipes)) for n in names]
        for name, process in running:
            out, err = process.communicate(timeout=600)
            if process.returncode != 0 or out.strip() != world.images[name]:
                failures.append(err.strip())
        elapsed += time.monotonic() - start
    rounds = max(1, fetches // len(names))
    total = rounds * len(names)
    print(f"{total} fetches of new images, {len(names)} at once: {elapsed:.1f} s, {len(failures)} failed")
    assert failures == [], f"{len(failures)} failed: {failures[:3]}"
    for round_ in range(rounds):
        world.nspod("image", "list", home=tmp_path / f"round{round_}")
        assert consistent(tmp_path / f"round{round_}")["rows"] == {world.images[n] for n in names}


@pytest.mark.parametrize(
    "moment", ["tmp-lock-created", "workspace-made", "locks-lock-created", "blob-placed", "layer-placed"]
)
def test_kill_9_at_the_moment_that_matters(world: World, tmp_path: Path, moment: str) -> None:
    """A fetch killed exactly as it creates its workspace's lock file (or makes the workspace,
    creates the image's lock file, places the blob or the tree): a second fetch and a sweep then
    succeed, and nothing half-written is left or used."""
    trust_good(world, tmp_path)
    name = "example.com/busybox"
    argv = world.argv("fetch", name + ":1.0", home=tmp_path, sandboxed=False)
    assert argv[1:3] == ["-m", "stage0"]
    killed = world.sandbox.run(
        sys.executable, "-m", "tests.harness.at_moment", "kill", moment, *argv[3:], env=world.env()
    )
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)
    again = world.nspod("fetch", name + ":1.0", home=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == world.images[name]
    swept = world.nspod("image", "list", "--no-legend", home=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert consistent(tmp_path)["rows"] == {world.images[name]}
    verified = world.nspod("image", "verify", world.images[name], home=tmp_path)
    assert verified.returncode == 0 and "content matches its ID" in verified.stdout
