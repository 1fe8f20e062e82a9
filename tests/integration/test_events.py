"""``nspod events`` and ``nspod logs``'s options against a real systemd and journald: a pod's whole
life as events read back by later nspod processes, ``logs -f`` ending with its pod, bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stage0.events import message_id
from tests.conftest import REPO
from tests.integration.test_pod_units import Host, host, image, prop  # noqa: F401 (fixtures)
from tests.integration.test_pods import Nspod, busybox_image, sh

pytestmark = pytest.mark.systemd
SCRIPT = "echo one; echo two; sleep 1; echo three; exit 3"


@pytest.fixture(scope="module")
def nspod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nspod]:
    tool = Nspod(tmp_path_factory.mktemp("events") / "data")
    yield tool
    for pod in json.loads(tool("list", "--full", "--format", "json").stdout or "[]"):
        tool("stop", "--force", pod["uuid"])


@pytest.fixture(scope="module")
def bb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_image(tmp_path_factory.mktemp("bb"))


@pytest.fixture(scope="module")
def life(nspod: Nspod, bb: Path) -> dict[str, object]:
    """One pod's life, followed by ``logs -f`` from its start: name, UUID, what logs printed."""
    name = f"ev-{uuidlib.uuid4().hex[:8]}"
    started = nspod("run", "--detach", f"--name={name}", str(bb), "--exec=/bin/sh", "--", "-c", SCRIPT)
    assert started.returncode == 0, started.stderr
    uuid = started.stdout.strip()
    began = time.monotonic()
    follow = nspod("logs", "-f", name, timeout=60)  # it hung before: timeout raises
    took = time.monotonic() - began
    assert nspod("status", "--wait=30s", uuid).returncode == 0
    return {"name": name, "uuid": uuid, "follow": follow, "took": took}


def events(nspod: Nspod, *args: str) -> list[dict[str, str]]:
    listed = nspod("events", "--no-stream", "--format=json", *args)
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_logs_follow_ends_with_the_pod_and_prints_all(life: dict[str, object]) -> None:
    follow = life["follow"]
    assert isinstance(follow, subprocess.CompletedProcess)
    assert follow.returncode == 0, follow.stderr
    assert follow.stdout.splitlines()[-3:] == ["bb: one", "bb: two", "bb: three"]
    assert float(str(life["took"])) < 30


def test_logs_window(nspod: Nspod, life: dict[str, object]) -> None:
    name = str(life["name"])
    assert nspod("logs", "--tail", "1", name).stdout == "bb: three\n"
    assert nspod("logs", "--tail=2", "--app=bb", name).stdout == "two\nthree\n"
    stamped = nspod("logs", "-t", "--app=bb", name).stdout.splitlines()
    assert [re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z ", "", s) for s in stamped] == [
        "one",
        "two",
        "three",
    ]
    assert nspod("logs", "--since=10m", "--app=bb", name).stdout == "one\ntwo\nthree\n"
    assert nspod("logs", "--until=1h", "--app=bb", name).stdout == ""  # an hour ago: before the pod
    later = f"{time.time() + 3600:.0f}"
    assert nspod("logs", f"--since={later}", name).stdout == ""
    assert nspod("logs", "--since=2000-01-01T00:00:00Z", "--tail=0", name).stdout == ""


def test_a_pods_whole_life_in_order(nspod: Nspod, life: dict[str, object]) -> None:
    uuid = str(life["uuid"])
    assert nspod("rm", uuid).returncode == 0
    seen = events(nspod, f"--filter=pod={life['name']}")  # a new nspod process: read from the journal
    assert [e["event"] for e in seen] == ["create", "start", "ready", "exited", "stop", "remove"]
    assert {e["pod"] for e in seen} == {uuid} and {e["type"] for e in seen} == {"pod"}
    exited = seen[3]
    assert (exited["app"], exited["exit_code"]) == ("bb", "3") and "signal" not in exited
    assert [e["timestamp"] for e in seen] == sorted(e["timestamp"] for e in seen)
    by_uuid = events(nspod, f"--filter=pod={uuid[:8]}", "--filter=event=start,event=stop")
    assert [e["event"] for e in by_uuid] == ["start", "stop"]
    # journalctl finds them by nspod's own MESSAGE_ID
    found = sh("journalctl", "-o", "json", f"MESSAGE_ID={message_id('exited')}", f"NSPOD_POD={uuid}")
    assert [json.loads(line)["NSPOD_EXIT_CODE"] for line in found.splitlines()] == ["3"]


def test_events_stream_as_they_happen(nspod: Nspod, bb: Path) -> None:
    name = f"ev-{uuidlib.uuid4().hex[:8]}"
    stream = subprocess.Popen(
        nspod.argv("events", f"--filter=pod={name}", "--format=json"),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        time.sleep(0.5)  # journalctl is reading the journal's tail by then
        ran = nspod("run", f"--name={name}", str(bb), "--exec=/bin/sh", "--", "-c", "kill -TERM $$")
        assert ran.returncode == 143, ran.stderr
        assert stream.stdout is not None
        seen = [json.loads(stream.stdout.readline()) for _ in range(4)]
    finally:
        stream.terminate()
        stream.wait(10)
    assert [e["event"] for e in seen] == ["create", "start", "exited", "stop"]  # foreground: no ready
    assert (seen[2]["exit_code"], seen[2]["signal"]) == ("143", "SIGTERM")


def test_a_stream_ends_at_its_until(nspod: Nspod, life: dict[str, object]) -> None:
    began = time.monotonic()
    until = f"{time.time() + 2:.3f}"  # in the future: a stream, from --since, up to then
    shown = nspod("events", "--since=10m", f"--until={until}", f"--filter=pod={life['name']}", timeout=30)
    assert shown.returncode == 0 and 1.5 < time.monotonic() - began < 20, shown.stderr
    assert " pod create " in shown.stdout.splitlines()[0] and str(life["name"]) in shown.stdout
    past = nspod("events", "--since=10m", "--until=1s", f"--filter=pod={life['name']}")
    assert past.returncode == 0 and past.stdout.splitlines() == shown.stdout.splitlines()


def test_image_events(nspod: Nspod, tmp_path: Path) -> None:
    aci = busybox_image(tmp_path, name=f"example.com/ev{uuidlib.uuid4().hex[:8]}")
    pulled = nspod("fetch", str(aci))
    assert pulled.returncode == 0, pulled.stderr
    image_id = pulled.stdout.strip()
    assert nspod("image", "rm", image_id).returncode == 0
    seen = events(nspod, "--since=5m", "--filter=type=image", f"--filter=image={image_id[:20]}")
    assert [e["event"] for e in seen] == ["pull", "image-remove"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("events", "--no-stream", "--filter=color=red"), "unknown filter 'color'"),
        (("events", "--no-stream", "--since=yesterday"), "bad time 'yesterday'"),
        (("events", "--no-stream", "--filter=type=volume"), "unknown event type 'volume'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(nspod: Nspod, args: tuple[str, ...], message: str) -> None:
    result = nspod(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[0] == f"nspod: {message}", result.stderr


def test_logs_bad_time(nspod: Nspod) -> None:
    result = nspod("logs", "--since=soon", "no-such-pod")  # said before the pod is looked for
    assert result.returncode == 2 and result.stderr.startswith("nspod: bad time 'soon'"), result.stderr
    count = nspod("logs", "--tail=-1", "no-such-pod")
    assert count.returncode == 2 and "bad line count" in count.stderr


def test_a_pod_at_units_life(host: Host, image: Path) -> None:  # noqa: F811
    name = f"ev{uuidlib.uuid4().hex[:6]}"
    shell = "echo at-unit; sleep 1; exit 7"  # ends once started: the unit stops on its own
    host.pod_file(name, f'[[app]]\nimage = "{image}"\nexec = "/bin/sh"\nargs = ["-c", "{shell}"]\n')
    started = subprocess.run(["systemctl", "start", f"pod@{name}.service"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while prop(f"pod@{name}.service", "ActiveState") not in ("inactive", "failed"):
        assert time.monotonic() < deadline, "the pod did not end"
        time.sleep(0.1)
    listed = host.nspod("events", "--no-stream", "--format=json", f"--filter=pod={name}")
    seen = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["event"] for e in seen][-4:] == ["start", "ready", "exited", "stop"], listed.stderr
    assert seen[-2]["exit_code"] == "7" and seen[-4]["unit"] == f"pod@{name}.service"
    subprocess.run(["systemctl", "reset-failed", f"pod@{name}.service"], check=False)
