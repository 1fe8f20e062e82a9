"""``nspod list``/``ps``, ``inspect`` and ``stats`` (issue #27) on real pods: one running pod with a
40-character name (a forwarded port, the default net), one that exited, one prepared pod marked
as a warm pool's spare; the numbers ``stats`` prints are held against the cgroup files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, busybox_image

pytestmark = pytest.mark.systemd

NAME = "verbs-b-a-pod-with-a-forty-character-nm"[:39] + "x"  # 40 characters
CGROUP = "/sys/fs/cgroup"


@dataclass(frozen=True)
class Pods:
    nspod: Nspod
    image: Path
    running: str  # its UUID
    exited: str
    spare: str


@pytest.fixture(scope="module")
def pods(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pods]:
    base = tmp_path_factory.mktemp("verbs-b")
    app = {
        "exec": ["/bin/sh", "-c", "echo up; exec sleep 600"],
        "user": "0",
        "group": "0",
        "ports": [{"name": "http", "protocol": "tcp", "port": 80}],
    }
    image = busybox_image(base, app=app)
    nspod = Nspod(base / "data")
    ran = nspod("run", "--detach", f"--name={NAME}", "--port=http:18181", str(image))
    assert ran.returncode == 0, ran.stderr
    try:
        done = nspod(
            "run",
            "--uuid-file-save",
            str(base / "exited"),
            str(image),
            "--exec=/bin/sh",
            "--",
            "-c",
            "exit 3",
        )
        assert done.returncode == 3, done.stderr
        spare = nspod("prepare", str(image)).stdout.split()[-1]
        (base / "data/pods/prepared" / spare / "cri.ready").write_text(
            ""
        )  # as the CRI's warm pool marks one
        running = json.loads(nspod("status", "--format=json", NAME).stdout)["uuid"]
        yield Pods(nspod, image, running, (base / "exited").read_text().strip(), spare)
    finally:
        nspod("stop", "--force", NAME)


def schema(kind: str) -> jsonschema.Draft202012Validator:
    loaded = json.loads((REPO / "stage0/schema/schemas/inspect.json").read_text())
    return jsonschema.Draft202012Validator({**loaded, "$ref": f"#/$defs/{kind}"})


def failed_cleanly(done: subprocess.CompletedProcess[str], code: int) -> None:
    """A bad input's answer: the exit status, one line saying why (and its hint), nothing printed."""
    lines = done.stderr.splitlines()
    assert done.returncode == code and done.stdout == "", done
    assert lines and lines[0].startswith(("nspod: ", "usage: ")) and "Traceback" not in done.stderr, lines


def test_list_fits_100_columns_and_ps_is_list(pods: Pods) -> None:
    listed = pods.nspod("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "IMAGE", "STATE", "CREATED", "IP", "APPS"]
    assert max(len(line) for line in lines) <= 100, listed.stdout
    (mine,) = [line.split() for line in lines if line.startswith(NAME)]
    assert mine[2] == "running" and mine[4].startswith("172.16.28.") and mine[5] == "bb", mine
    (ended,) = [line.split() for line in lines if line.startswith(pods.exited[:8])]
    assert ended[2] == "exited" and ended[4] == "-" and ended[5] == "bb=3", ended  # no old address
    same = [line.split()[:3] for line in pods.nspod("ps").stdout.splitlines()]
    assert same == [line.split()[:3] for line in lines]  # ages may tick meanwhile


def test_spares_are_not_pods(pods: Pods) -> None:
    shown = {p["uuid"] for p in json.loads(pods.nspod("list", "--format=json").stdout)}
    assert shown == {pods.running, pods.exited}
    assert pods.spare not in pods.nspod("list", "-q").stdout
    assert pods.spare in {p["uuid"] for p in json.loads(pods.nspod("list", "-a", "--format=json").stdout)}


def test_quiet_names_are_taken_by_every_verb(pods: Pods) -> None:
    names = pods.nspod("ps", "-q").stdout.split()
    assert names == [NAME, pods.exited] or names == [pods.exited, NAME], names
    for name in names:
        for verb in (["status"], ["cat-manifest"], ["inspect"], ["logs"]):
            done = pods.nspod(*verb, name)
            assert done.returncode == 0, (verb, name, done.stderr)
    for verb in (["stats", "--no-stream"], ["enter", NAME, "--", "/bin/true"]):
        done = pods.nspod(*verb, *([] if verb[0] == "enter" else [NAME]))
        assert done.returncode == 0, (verb, done.stderr)


def test_filters_and_formats(pods: Pods) -> None:
    def listed(*args: str) -> list[str]:
        done = pods.nspod("ps", *args)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert listed("-q", "--filter", "state=running") == [NAME]
    assert listed("-q", "--filter", "status=exited") == [pods.exited]
    assert listed("-q", "--filter", "state=running,name=^verbs-b") == [NAME]
    assert listed("-q", "--filter", "state=exited", "--filter", "name=^verbs-b") == []
    assert listed("-q", "--filter", f"id={pods.exited[:6]}") == [pods.exited]
    assert sorted(listed("-q", "--filter", "image=example.com/bb")) == sorted([NAME, pods.exited])
    assert listed("--filter", "state=running", "--format", "{{.Name}} {{.State}} {{.UUID}}") == [
        f"{NAME} running {pods.running}"
    ]
    titled = listed("--filter", "state=running", "--format", "table {{.ID}}\\t{{.Status}}")
    assert titled == ["ID\tSTATUS", f"{pods.running[:8]}\trunning"]
    (shown,) = json.loads("\n".join(listed("--filter", "state=exited", "--format", "json")))
    assert shown["uuid"] == pods.exited and shown["networks"] == []
    assert "default:ip4=172.16.28." in "\n".join(listed("--full", "--no-legend"))


@pytest.mark.parametrize(
    "args",
    [
        ("ps", "--filter", "colour=red"),
        ("ps", "--filter", "state=sleeping"),
        ("ps", "--format", "{{.Nope}}"),
        ("list", "--format", "yaml"),
        ("stats", "--format", "yaml"),
        ("inspect", "--type", "volume", "x"),
    ],
)
def test_bad_input_is_a_usage_error(pods: Pods, args: tuple[str, ...]) -> None:
    failed_cleanly(pods.nspod(*args), 2)


@pytest.mark.parametrize(
    "args",
    [
        ("inspect", "no-such-pod"),
        ("stats", "--no-stream", "no-such-pod"),
        ("stats", "--no-stream", "EXITED"),
    ],
)
def test_an_unknown_or_ended_pod_is_refused(pods: Pods, args: tuple[str, ...]) -> None:
    failed_cleanly(pods.nspod(*[pods.exited if a == "EXITED" else a for a in args]), 254)


def test_inspect_pods_and_images(pods: Pods) -> None:
    image_id = pods.nspod("fetch", str(pods.image)).stdout.strip()
    done = pods.nspod("inspect", NAME, pods.exited[:8], image_id)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert schema("inspect").is_valid(found), list(schema("inspect").iter_errors(found))
    running, exited, image = found
    assert (running["id"], running["state"], running["name"]) == (pods.running, "running", NAME)
    assert running["apps"][0]["state"] == "running" and running["apps"][0]["image"]["id"] == image_id
    assert running["networks"][0]["addresses"][0].startswith("172.16.28.")
    assert running["ports"] == [
        {"name": "http", "protocol": "tcp", "port": 80, "host_port": 18181, "host_ip": None}
    ]
    assert running["unit"] and running["machine"] == NAME and running["stage1"]["abi"] >= 1
    assert (exited["state"], exited["apps"][0]["exit_code"], exited["networks"]) == ("exited", 3, [])
    assert exited["finished"] is not None and exited["finished"] >= exited["started"]
    assert image["id"] == image_id and "example.com/bb:1.0" in image["names"]
    assert image["manifest"]["name"] == "example.com/bb" and image["verified"] is False
    assert json.loads(pods.nspod("inspect", "--type", "image", image_id).stdout)[0]["kind"] == "image"


def _group_files(unit: str) -> dict[str, Path]:
    if (Path(CGROUP) / "cgroup.controllers").exists():  # v2
        (group,) = Path(CGROUP).glob(f"**/{unit}")
        return {
            "memory": group / "memory.current",
            "pids": group / "pids.current",
            "cpu": group / "cpu.stat",
        }
    (memory,) = Path(CGROUP, "memory").glob(f"**/{unit}")
    (pids,) = Path(CGROUP, "pids").glob(f"**/{unit}")
    # without CPU accounting (v1: no cpuacct group for the unit), the unit's processes' CPU time
    cpu = [
        p / "cpuacct.usage" for c in ("cpuacct", "cpu,cpuacct") for p in Path(CGROUP, c).glob(f"**/{unit}")
    ]
    (procs,) = Path(CGROUP, "systemd").glob(f"**/{unit}")
    return {
        "memory": memory / "memory.usage_in_bytes",
        "pids": pids / "pids.current",
        "cpu": (cpu or [procs])[0],
    }


def _cpu_ns(path: Path) -> int:
    if path.is_dir():  # the processes' utime and stime, in clock ticks
        stats = [
            Path(f"/proc/{pid}/stat")
            for group in path.rglob("cgroup.procs")
            for pid in group.read_text().split()
        ]
        fields = [s.read_text().rpartition(")")[2].split() for s in stats if s.exists()]
        return sum(int(f[11]) + int(f[12]) for f in fields) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    text = path.read_text()
    return int(text.split("usage_usec")[1].split()[0]) * 1000 if "usage_usec" in text else int(text)


def test_stats_agree_with_the_cgroup_files(pods: Pods) -> None:
    shown = json.loads(pods.nspod("inspect", NAME).stdout)[0]
    unit, address = shown["unit"], shown["networks"][0]["addresses"][0]
    with socket.socket() as knock, contextlib.suppress(OSError):  # traffic: a SYN in, a RST out
        knock.settimeout(2)
        knock.connect((address, 80))
    files = _group_files(unit)
    cpu_before = _cpu_ns(files["cpu"])
    done = pods.nspod("stats", "--no-stream", "--format=json", NAME)
    cpu_after = _cpu_ns(files["cpu"])
    memory, tasks = int(files["memory"].read_text()), int(files["pids"].read_text())
    assert done.returncode == 0, done.stderr
    (pod,) = json.loads(done.stdout)
    assert schema("stats").is_valid([pod]), list(schema("stats").iter_errors([pod]))
    assert abs(pod["memory_bytes"] - memory) <= memory * 0.05, (pod, memory)
    assert pod["pids"] == tasks, (pod, tasks)
    assert cpu_before <= pod["cpu_ns"] <= cpu_after, (cpu_before, pod, cpu_after)
    assert pod["net_rx_bytes"] >= 40 and pod["net_tx_bytes"] >= 40, pod
    (app,) = pod["apps"]
    assert (
        app["name"] == "bb"
        and 1 <= app["pids"] <= pod["pids"]
        and app["memory_bytes"] <= pod["memory_bytes"]
    )


def test_stats_streams_until_ctrl_c(pods: Pods) -> None:
    stats = subprocess.Popen(
        pods.nspod.argv("stats", NAME),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        # as from a terminal: the suite may run as a shell's background job, which ignores SIGINT
        # (then so would Python, and no Ctrl-C would ever reach the stream)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert stats.stdout is not None
    headers, deadline = 0, time.monotonic() + 30
    while headers < 2 and time.monotonic() < deadline:  # two refreshes
        headers += stats.stdout.readline().startswith("NAME")
    stats.send_signal(signal.SIGINT)
    assert stats.wait(timeout=10) == 0 and headers == 2
