"""A storm of kill -9s over every verb (#23, done-when): each verb is timed once uncut, then killed
at moments spread over that life (a fraction k/n of it, not at random); afterwards, once the
pods that still run are stopped and two ``gc``s have run, nothing is left on the host: no mount,
unit, machine, veth, network namespace, network record, port claim or ``.removing`` entry.

``NSPOD_STORM_KILLS`` sets the number of kills (200)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stage0.pods.dirs import EMBRYO_GRACE
from tests.integration.test_kill_moments import claims, kill_when, mounts_under
from tests.integration.test_pods import Nspod, bb, busybox_image, sh  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
KILLS = int(os.environ.get("NSPOD_STORM_KILLS", "200"))
MAX_RUNNING = 6  # pods left running by the storm are stopped past this (inotify, memory: 2 cores)


@dataclass
class Storm:
    nspod: Nspod
    image: str
    other: str  # an image the storm removes and fetches again
    ported: str
    sandbox: str = ""
    apps: list[str] = field(default_factory=list)
    made: int = 0

    def ok(self, *args: str) -> str:
        """An uncut verb (a precondition), which must work: on failure, the journal's last words."""
        done = self.nspod(*args)
        if done.returncode != 0:
            journal = sh("journalctl", "--no-pager", "-n", "60", "-o", "short-monotonic")
            raise AssertionError(f"{args}: {done.stderr}\n{journal}")
        return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""

    def pods(self, state: str) -> list[str]:
        listed = json.loads(self.nspod("list", "--format=json").stdout or "[]")
        return [p["uuid"] for p in listed if p["state"] == state]

    def the_sandbox(self) -> str:
        if self.sandbox not in self.pods("running"):
            self.sandbox = self.ok("app", "sandbox")
            self.apps = []
        return self.sandbox

    def an_app(self) -> str:
        if not self.apps:
            self.made += 1
            name = f"s{self.made}"
            self.ok("app", "add", self.the_sandbox(), self.image, "--name", name,
                    "--exec", "/bin/sleep", "--", "30")  # fmt: skip
            self.apps.append(name)
        return self.apps[-1]

    # each verb: the command line to kill (its preconditions made uncut)

    def verbs(self) -> dict[str, Callable[[], list[str]]]:
        def app_add() -> list[str]:
            self.made += 1
            self.apps.append(f"s{self.made}")  # if it dies half-way, app rm or stop takes it
            return ["app", "add", self.the_sandbox(), self.image, "--name", f"s{self.made}",
                    "--exec", "/bin/sleep", "--", "30"]  # fmt: skip

        def app_rm() -> list[str]:
            app = self.an_app()
            self.apps.remove(app)
            return ["app", "rm", self.the_sandbox(), "--app", app]

        def run_port() -> list[str]:
            self.made += 1  # a port of its own each time: refused for a claim is not the point here
            return ["run", "--detach", f"--port=http:{18100 + self.made % 200}", self.ported]

        def fetch() -> list[str]:
            self.nspod("image", "rm", "example.com/other")
            return ["fetch", self.other]

        def image_rm() -> list[str]:
            self.nspod("fetch", self.other)
            return ["image", "rm", "example.com/other"]

        return {
            "run": lambda: ["run", self.image, "--exec=/bin/sh", "--", "-c", "echo hi; sleep 0.3"],
            "run --detach": lambda: ["run", "--detach", self.image, "--exec=/bin/sleep", "--", "30"],
            "run --port": run_port,
            "prepare": lambda: ["prepare", self.image, "--exec=/bin/true"],
            "run-prepared": lambda: ["run-prepared", self.ok("prepare", self.image, "--exec=/bin/true")],
            "stop": lambda: [
                "stop",
                self.ok("run", "--detach", self.image, "--exec=/bin/sleep", "--", "30"),
            ],
            "rm": lambda: ["rm", (self.pods("exited") or [self.ok("prepare", self.image)])[0]],
            "gc": lambda: ["gc", "--grace-period=0s"],
            "app sandbox": lambda: ["app", "sandbox"],
            "app add": app_add,
            "app start": lambda: ["app", "start", self.the_sandbox(), "--app", self.an_app()],
            "app stop": lambda: ["app", "stop", self.the_sandbox(), "--app", self.an_app()],
            "app rm": app_rm,
            "fetch": fetch,
            "image rm": image_rm,
        }

    def calm(self) -> None:
        """Stop what the storm left running beyond a few pods (uncut)."""
        running = [p for p in self.pods("running") if p != self.sandbox]
        for uuid in running[: max(0, len(running) - MAX_RUNNING)]:
            self.nspod("stop", "--force", uuid)


def timed(nspod: Nspod, args: list[str]) -> float:
    start = time.monotonic()
    nspod(*args)
    return time.monotonic() - start


def leftovers(data: Path) -> dict[str, object]:
    """What the host still holds of nspod's pods."""
    units = sh("systemctl", "list-units", "--all", "--no-legend", "--plain", "nspod-*").splitlines()
    removing = data / "pods/.removing"
    net = Path("/run/nspod/net")
    records = (
        [p.name for p in net.iterdir() if p.name not in ("ports", "ipam", "unit")] if net.is_dir() else []
    )
    records += [f"unit/{p.name}" for p in (net / "unit").glob("*")]
    records += [f"ipam/{p.parent.name}/{p.name}" for p in (net / "ipam").glob("*/*") if p.name[0].isdigit()]
    return {
        "mounts": mounts_under(data),
        "units": [u for u in units if not u.startswith("nspod-metadata")],
        "machines": sh("machinectl", "list", "--no-legend").strip(),
        "veths": sh("ip", "-o", "link", "show", "type", "veth").strip(),
        "netns": [n for n in sh("ip", "netns", "list").split() if n.startswith("nspod-")],
        "network records": records,  # teardown scripts, pod@'s links to them, IP leases
        "port claims": claims(),
        ".removing": sorted(os.listdir(removing)) if removing.is_dir() else [],
    }


def added(before: dict[str, object], after: dict[str, object]) -> dict[str, object]:
    """What ``after`` holds that ``before`` did not, key by key (lines of the text ones)."""

    def new(old: object, now: object) -> object:
        if isinstance(now, str):
            seen = set(str(old).splitlines())
            return "\n".join(line for line in now.splitlines() if line not in seen)
        assert isinstance(now, list) and isinstance(old, list)
        return [item for item in now if item not in old]

    return {key: new(before[key], value) for key, value in after.items()}


def test_a_storm_of_kills_leaves_nothing_after_two_gcs(tmp_path: Path, bb: Path) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    app = {"exec": ["/bin/sleep", "30"], "user": "0", "group": "0",
           "ports": [{"name": "http", "protocol": "tcp", "port": 80}]}  # fmt: skip
    ported = busybox_image(tmp_path / "ported", app=app, name="example.com/ported")
    other = busybox_image(tmp_path / "other", name="example.com/other")
    storm = Storm(nspod, str(bb), str(other), str(ported))
    # the host as earlier tests of the session left it: the storm answers only for what it adds
    before = leftovers(nspod.data)
    for image in (bb, ported):
        storm.ok("fetch", str(image))
    verbs = storm.verbs()
    per_verb = -(-KILLS // len(verbs))
    # each verb's life, uncut (the shorter of two: the first fills caches)
    lives = {name: min(timed(nspod, make()), timed(nspod, make())) for name, make in verbs.items()}
    started = time.monotonic()
    killed = ended = rounds = 0
    while killed < KILLS and rounds < 3:  # a verb that ended first is tried again at another moment
        for index in range(per_verb):
            for name, make in verbs.items():
                if killed >= KILLS:
                    break
                # spread over the verb's life, each round between the last one's moments
                delay = lives[name] * 0.9 * (index + (1 + rounds) / 4) / per_verb
                args = make()
                at = time.monotonic() + delay
                if kill_when(nspod, args, lambda at=at: time.monotonic() >= at):  # type: ignore[misc]
                    killed += 1
                else:
                    ended += 1
            storm.calm()
        rounds += 1
    took = time.monotonic() - started
    # the pods that run are legitimately running: stopped, then two gcs
    for uuid in storm.pods("running"):
        nspod("stop", "--force", uuid)
    if list((nspod.data / "pods/embryo").glob("*")):
        time.sleep(EMBRYO_GRACE)  # an embryo is its maker's for this long
    gcs = [nspod("gc", "--grace-period=0s", "--expire-prepared=0s") for _ in range(2)]
    left = added(before, leftovers(nspod.data))
    print(f"storm: {killed} killed, {ended} ended first, {took:.0f}s; lives {lives}")
    assert [g.returncode for g in gcs] == [0, 0], [g.stderr for g in gcs]
    netns = left["netns"]
    assert isinstance(netns, list)
    found = {u: [f"{p.parent.name}: {sorted(os.listdir(p))}" for p in nspod.data.glob(f"pods/*/{u}")]
             for u in {str(n).removeprefix("nspod-") for n in netns}}  # fmt: skip
    found["list"] = [nspod("list", "--full").stdout]
    assert left == {k: ([] if k != "machines" and k != "veths" else "") for k in left}, (left, found)
    assert killed >= KILLS, (killed, ended)
