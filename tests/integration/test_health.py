"""Health checks (issue #27, item 3), against a real systemd: a check runs in the pod with the app's
confinement, status shows starting/healthy/unhealthy, an app turned unhealthy is restarted
(on-failure=restart) and the journal records each change (NSPOD_EVENT=health_status)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_output_schema
from tests.integration.test_pods import APPLETS, Nspod, busybox_image
from tests.integration.test_verbs_b import schema

pytestmark = pytest.mark.systemd
POD = "healthprobe"
# healthy at first, unhealthy 2 s later on its first run alone: the restart makes it healthy for good
APP = (
    'echo x >> /starts; touch /ok; if [ "$(wc -l < /starts)" = 1 ]; then sleep 2; rm /ok; fi; exec sleep 600'
)
CHECK = "grep CapBnd /proc/self/status; test -e /ok"
CAP_NET_BIND_SERVICE = 1 << 10


def wait_for(what: str, test: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := test():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What status and the journal said of a pod whose app turned unhealthy once."""
    base = tmp_path_factory.mktemp("health")
    app = {"exec": ["/bin/sh", "-c", APP], "user": "0", "group": "0"}
    image = busybox_image(base, app=app, applets=(*APPLETS, "rm", "touch", "grep", "test"))
    nspod = Nspod(base / "data")
    since = time.strftime("%Y-%m-%d %H:%M:%S")
    # the command podman's way, before the image; the rest rkt's way, after it
    flags = [
        "--health-interval=1s",
        "--health-retries=2",
        "--health-timeout=5s",
        "--health-on-failure=restart",
    ]
    ran = nspod("run", "--detach", f"--name={POD}", "--health-cmd", CHECK, str(image),
                "--caps-retain=CAP_NET_BIND_SERVICE", *flags)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    out: dict[str, Any] = {}
    try:

        def status() -> dict[str, Any]:
            shown = nspod("status", "--format=json", POD)
            assert shown.returncode == 0, shown.stderr
            return dict(json.loads(shown.stdout))

        out["first"] = status()
        out["unhealthy"] = wait_for(
            "unhealthy", lambda: (s := status())["health"]["bb"]["status"] == "unhealthy" and s
        )
        out["restarted"] = wait_for(
            "healthy after the restart",
            lambda: (
                (s := status())["health"]["bb"]["status"] == "healthy"
                and s["health"]["bb"]["last_check"]
                and nspod("enter", POD, "--", "/bin/wc", "-l", "/starts").stdout.split()[0] == "2"
                and s
            ),
        )
        out["host journal"] = nspod("enter", POD, "--", "/bin/ls", "/run/nspod/host-journal").returncode
        out["text"] = nspod("status", POD).stdout
        out["list"] = json.loads(nspod("list", "--format=json").stdout)
        out["ps"] = nspod("ps").stdout
        out["inspect"] = json.loads(nspod("inspect", POD).stdout)
        journal = subprocess.run(
            ["journalctl", "--since", since, "-o", "json", "NSPOD_EVENT=health_status", f"NSPOD_POD={POD}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        out["events"] = [json.loads(line) for line in journal.stdout.splitlines() if line.strip()]
    finally:
        nspod("stop", POD)
    return out


def test_status_shows_starting_then_unhealthy_then_healthy(seen: dict[str, Any]) -> None:
    assert seen["first"]["health"]["bb"]["status"] in ("starting", "healthy"), seen["first"]
    assert seen["unhealthy"]["health"]["bb"]["failing_streak"] >= 2, seen["unhealthy"]
    assert_output_schema("pod-status", seen["restarted"])
    assert "health-bb=healthy\n" in seen["text"], seen["text"]
    assert [a["health"] for p in seen["list"] if p["name"] == POD for a in p["apps"]] == ["healthy"]
    assert "bb(healthy)" in seen["ps"], seen["ps"]
    assert schema("inspect").is_valid(seen["inspect"]), list(schema("inspect").iter_errors(seen["inspect"]))
    (app,) = seen["inspect"][0]["apps"]
    assert app["health"]["status"] == "healthy" and app["healthcheck"]["retries"] == 2, app
    assert app["healthcheck"]["on_failure"] == "restart" and app["healthcheck"]["interval"] == 1.0, app


def test_the_check_runs_with_the_apps_confinement(seen: dict[str, Any]) -> None:
    output = seen["restarted"]["health"]["bb"]["last_output"]
    capbnd = next(line.split()[1] for line in output.splitlines() if line.startswith("CapBnd"))
    assert int(capbnd, 16) == CAP_NET_BIND_SERVICE, output


def test_the_app_cannot_reach_the_host_journal_socket(seen: dict[str, Any]) -> None:
    assert seen["host journal"] != 0  # bound into the pod's own root, not into the app's


def test_an_unhealthy_app_is_restarted_and_the_journal_shows_it(seen: dict[str, Any]) -> None:
    changes = [(e["NSPOD_APP"], e["NSPOD_HEALTH"]) for e in seen["events"]]
    assert ("bb", "unhealthy") in changes, changes
    after = changes[changes.index(("bb", "unhealthy")) :]
    assert ("bb", "healthy") in after, changes  # the restarted app passes again


BAD = (
    ("--health-interval=soon", "bad --health-interval 'soon'"),
    ("--health-on-failure=explode", "bad --health-on-failure 'explode'"),
    ("--health-retries=0", "bad --health-retries '0'"),
)


def test_bad_health_flags_are_refused_in_one_line(tmp_path: Path) -> None:
    image = busybox_image(tmp_path)
    nspod = Nspod(tmp_path / "data")
    for flag, said in BAD:
        ran = nspod("run", str(image), "--health-cmd=true", flag)
        assert ran.returncode == 2, ran.stderr
        assert ran.stderr.startswith(f"nspod: {said}"), ran.stderr
    assert json.loads(nspod("list", "--format=json").stdout or "[]") == []  # nothing was made


def test_on_failure_kill_ends_the_pod_with_137(tmp_path: Path) -> None:
    """In a pod with its own user namespace, too (the host journal's socket is bound as it is)."""
    app = {"exec": ["/bin/sleep", "600"], "user": "0", "group": "0"}
    image = busybox_image(tmp_path, app=app)
    nspod = Nspod(tmp_path / "data")
    flags = ["--health-cmd=false", "--health-interval=1s", "--health-retries=1", "--health-on-failure=kill"]
    started = time.monotonic()
    ran = nspod("run", "--name=healthkill", "--private-users", str(image), *flags, timeout=60)
    assert ran.returncode == 137, ran.stderr
    assert time.monotonic() - started < 30
    journal = subprocess.run(
        ["journalctl", "-o", "json", "NSPOD_EVENT=health_status", "NSPOD_POD=healthkill"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert [json.loads(line)["NSPOD_HEALTH"] for line in journal.stdout.splitlines()] == ["unhealthy"]


def test_a_sandbox_apps_check_comes_and_goes_with_it(tmp_path: Path) -> None:
    image = busybox_image(tmp_path, app={"exec": ["/bin/sleep", "600"], "user": "0", "group": "0"})
    nspod = Nspod(tmp_path / "data")
    made = nspod("app", "sandbox", "--name=healthbox")
    assert made.returncode == 0, made.stderr
    box = made.stdout.strip().splitlines()[-1]
    try:
        added = nspod(
            "app", "add", box, str(image), "--name=web", "--health-cmd=true", "--health-interval=1s"
        )
        assert added.returncode == 0, added.stderr
        assert nspod("app", "start", box, "--app", "web").returncode == 0

        def health() -> dict[str, Any]:
            return dict(json.loads(nspod("status", "--format=json", box).stdout)["health"])

        wait_for("healthy", lambda: health().get("web", {}).get("status") == "healthy")
        removed = nspod("app", "rm", box, "--app", "web")
        assert removed.returncode == 0, removed.stderr
        assert health() == {}
        again = nspod("app", "add", box, str(image), "--name=web")  # the name again, with no check
        assert again.returncode == 0, again.stderr
        assert nspod("app", "start", box, "--app", "web").returncode == 0
        time.sleep(1.5)  # a check left behind would have run by now
        assert health() == {}
        assert not (tmp_path / "data/pods/run" / box / "status/web.health").exists()
    finally:
        nspod("stop", box)
