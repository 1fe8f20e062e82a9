"""Every verb that makes a pod of an image marks the image used (issue #23 item 8): `image gc`, and
its timer, keep what runs daily however long ago it was imported, as rkt did."""

from __future__ import annotations

import calendar
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
DAY_AGO = 25 * 3600


def age(nspod: Nspod, image_id: str, seconds: float) -> None:
    """Pretend the image was imported, and last used, ``seconds`` ago."""
    with sqlite3.connect(nspod.data / "images" / "index.db") as db:
        then = time.time() - seconds
        db.execute("UPDATE images SET import_time=?, last_used=? WHERE id=?", (then, then, image_id))


def listed(nspod: Nspod) -> dict[str, dict[str, object]]:
    done = nspod("image", "list", "--format=json")
    assert done.returncode == 0, done.stderr
    return {row["id"]: row for row in json.loads(done.stdout)}


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-1] if done.stdout.split() else ""


def by_run(nspod: Nspod, image: str) -> None:
    ok(nspod("run", "--rm", image))


def by_prepare(nspod: Nspod, image: str) -> None:
    ok(nspod("rm", ok(nspod("prepare", image))))


def by_run_prepared(nspod: Nspod, image: str) -> None:
    uuid = ok(nspod("prepare", image))
    with sqlite3.connect(nspod.data / "images" / "index.db") as db:  # prepare marked it: undo that
        db.execute("UPDATE images SET last_used=?", (time.time() - DAY_AGO,))
    assert nspod("run-prepared", uuid).returncode == 0
    ok(nspod("rm", uuid))


def by_app_add(nspod: Nspod, image: str) -> None:
    sandbox = ok(nspod("app", "sandbox"))
    try:
        ok(nspod("app", "add", sandbox, image, "--name", "a", "--exec", "/bin/true"))
    finally:
        nspod("stop", sandbox)
        nspod("rm", sandbox)


@pytest.mark.parametrize("verb", [by_run, by_prepare, by_run_prepared, by_app_add], ids=lambda f: f.__name__)
def test_a_pod_marks_its_image_used(tmp_path: Path, bb: Path, verb: Callable[[Nspod, str], None]) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    image_id = ok(nspod("fetch", str(bb)))
    age(nspod, image_id, DAY_AGO)
    before = time.time()
    verb(nspod, "example.com/bb")
    used = calendar.timegm(time.strptime(str(listed(nspod)[image_id]["lastused"]), "%Y-%m-%dT%H:%M:%SZ"))
    assert used >= int(before) - 1, listed(nspod)[image_id]
    assert nspod("image", "gc").returncode == 0  # the default grace: 24 h, as the timer runs it
    assert image_id in listed(nspod)


def test_an_unused_image_still_goes(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    image_id = ok(nspod("fetch", str(bb)))
    age(nspod, image_id, DAY_AGO)
    assert nspod("image", "gc").returncode == 0
    assert image_id not in listed(nspod)
