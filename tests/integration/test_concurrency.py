"""Many nspods at once (issue #9, defect 8): readers take pods that vanish or move under them as a
normal event, two gcs take turns, and a kill -9 storm over every verb leaves a consistent store and
no tracebacks."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stage0.pods.dirs import EMBRYO_GRACE
from tests.integration.test_pod_units import image  # noqa: F401  (fixture)
from tests.integration.test_pods import Nspod, nspod  # noqa: F401  (fixture)

pytestmark = pytest.mark.systemd
STORM_SECONDS = float(os.environ.get("NSPOD_STORM_SECONDS", "60"))


def clean(result: subprocess.CompletedProcess[str]) -> bool:
    return "internal error" not in result.stderr and "Traceback" not in result.stderr


def exited_pods(nspod: Nspod, image: Path, count: int) -> None:  # noqa: F811
    """``count`` exited pods, made quickly: prepared, then put where a killed `run` leaves them."""
    for _ in range(count):
        uuid = nspod("prepare", str(image)).stdout.strip().splitlines()[-1]
        pods = nspod.data / "pods"
        os.rename(pods / "prepared" / uuid, pods / "run" / uuid)


def embryos_aged(nspod: Nspod) -> None:  # noqa: F811
    """Until the embryos killed makers left are older than EMBRYO_GRACE, so gc may take them (at
    once when there are none)."""
    for embryo in (nspod.data / "pods/embryo").glob("*"):
        try:  # its age as stage0's Pod.created() reads it, or older
            made = max(path.stat().st_mtime for path in (embryo, embryo / "created") if path.exists())
        except (FileNotFoundError, ValueError):  # gone meanwhile
            continue
        time.sleep(max(0.0, made + EMBRYO_GRACE + 0.5 - time.time()))


def test_two_gcs_and_many_lists_at_once(nspod: Nspod, image: Path) -> None:  # noqa: F811
    for _ in range(4):
        exited_pods(nspod, image, 12)
        jobs = [("gc", "--grace-period=0s")] * 2 + [
            ("list",),
            ("list", "--format=json"),
            ("status", "x"),
        ] * 6
        with ThreadPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(lambda args: nspod(*args), jobs))
        for args, result in zip(jobs, results, strict=True):
            assert clean(result), (args, result.stderr)
            if args[0] != "status":  # (no pod x: a plain answer)
                assert result.returncode == 0, (args, result.stderr)
        assert json.loads(nspod("list", "--format=json").stdout) == []
        removed = sum(r.stdout.count("removed pod") for r in results)
        assert removed == 12  # each pod once, by one of the two


def test_kill_9_storm(nspod: Nspod, image: Path) -> None:  # noqa: F811
    verbs = [
        ("fetch", str(image)),
        ("prepare", str(image)),
        ("run", str(image), "--exec=/bin/true"),
        ("run", "--detach", str(image), "--exec=/bin/sleep", "--", "30"),
        ("gc", "--grace-period=0s"),
        ("image", "gc", "--grace-period=0s"),
        ("list", "--format=json"),
        ("image", "list"),
    ]
    killed = finished = 0
    networks = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    deadline = time.monotonic() + STORM_SECONDS
    while time.monotonic() < deadline:
        args = random.choice(verbs)
        process = subprocess.Popen(
            nspod.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        try:
            _, stderr = process.communicate(timeout=random.uniform(0.05, 0.8))
            finished += 1
            assert "internal error" not in stderr and "Traceback" not in stderr, (args, stderr)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)  # our own child, by PID
            process.communicate()
            killed += 1
        if args[0] == "list":  # and some stops of what runs, also cut short at times
            for pod in json.loads(nspod("list", "--full", "--format=json").stdout or "[]"):
                if pod["state"] == "running" and random.random() < 0.5:
                    nspod("stop", pod["uuid"], timeout=60)
    assert killed >= 10 and finished >= 10, (killed, finished)
    # afterwards: everything answers, everything can be stopped and collected
    for pod in json.loads(nspod("list", "--full", "--format=json").stdout):
        if pod["state"] == "running":
            assert nspod("stop", pod["uuid"]).returncode == 0
    embryos_aged(nspod)
    final = (
        ("gc", "--grace-period=0s", "--expire-prepared=0s"),
        ("image", "gc", "--grace-period=0s"),
        ("image", "list"),
    )
    for args in final:
        result = nspod(*args)
        assert result.returncode == 0 and clean(result), (args, result.stderr)
    left = json.loads(nspod("list", "--full", "--format=json").stdout)
    assert left == [], left
    # a run killed anywhere in its start leaves no network behind once gc has seen its pod
    assert (sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []) == networks
    fetched = nspod("fetch", str(image))  # the store still works: the index and blobs agree
    assert fetched.returncode == 0, fetched.stderr
    verified = nspod("image", "verify", fetched.stdout.strip())
    assert verified.returncode == 0, verified.stderr
