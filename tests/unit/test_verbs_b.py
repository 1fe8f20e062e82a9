"""``list``/``ps`` (columns, -q names, --filter, --format templates), ``stats`` (cgroup v1 and v2
readers on fixture trees, CPU %, its JSON) and ``inspect``'s JSON against its schema: pure parts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jsonschema
import pytest

from stage0.api import stats as api_stats
from stage0.api.inspect import PodDetails
from stage0.api.views import AppImage, AppState, AppView, NetView, PodApp, PodView
from stage0.cli import podlist, ps
from stage0.cli import stats as cli_stats
from stage0.cli.format import table
from stage0.cli.inspect import pod_json
from stage0.host import cgroupfs
from stage0.pods.dirs import PodState
from stage1.abi import PodSpec, PortSpec
from tests.conftest import REPO

UUID = "0f4e4a3c-1111-4222-8333-944455556666"
POD = "machine.slice/nspod-web.service"
APP = f"{POD}/payload/system.slice/bb.service"


def view(
    uuid: str = UUID, machine: str | None = "web", state: PodState = PodState.RUNNING, path: str = "/nowhere"
) -> PodView:
    app = PodApp("bb", AppImage("example.com/bb", "1.0", "sha512-" + "a" * 64), None, None)
    net = NetView("default", "eth0", ("172.16.28.5",), ("172.16.28.1",))
    return PodView(uuid, path, state, machine, "nspod-web.service", 1000.0, 1001.0, (app,), (net,))


def row(v: PodView, images: tuple[str, ...] = ("example.com/bb:1.0",), **labels: str) -> podlist.Row:
    return podlist.Row(v, images, labels)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def schema(kind: str) -> jsonschema.Draft202012Validator:
    loaded = json.loads((REPO / "stage0/schema/schemas/inspect.json").read_text())
    return jsonschema.Draft202012Validator({**loaded, "$ref": f"#/$defs/{kind}"})


# --- list ---


def test_a_pod_with_a_40_character_name_fits_100_columns() -> None:
    name = "a-pod-with-a-name-of-forty-characters-xy"
    assert len(name) == 40
    long_image = ("registry.example.com/library/busybox:1.36.1",)
    text = table([podlist.compact_cells(row(view(machine=name), long_image), 1000.0 + 7200)], podlist.LEGEND)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert text.splitlines()[1].split()[:6] == [
        name,
        "..y/busybox:1.36.1",
        "running",
        "2h",
        "172.16.28.5",
        "bb",
    ]


def test_an_unnamed_pod_shows_its_short_uuid_and_an_exited_one_no_address() -> None:
    exited = view(machine=f"nspod-{UUID}", state=PodState.EXITED)
    assert podlist.compact_cells(row(exited), 1030.0)[0] == UUID[:8]
    assert podlist.compact_cells(row(exited), 1030.0)[3:5] == ["30s", "-"]
    assert ps._shown(exited).networks == ()


def test_quiet_names_are_the_ones_find_resolves() -> None:
    other = "1" + UUID[1:]
    unnamed = "2" + UUID[1:]
    views = [
        view(machine="web", state=PodState.RUNNING),
        view(other, machine="web", state=PodState.EXITED),  # newer, but the running one wins
        view(unnamed, machine=f"nspod-{unnamed}"),
    ]
    assert podlist.handles(views) == {UUID: "web", other: other, unnamed: unnamed}
    views = [view(machine="db", state=PodState.EXITED), view(other, machine="db", state=PodState.EXITED)]
    assert podlist.handles(views) == {UUID: UUID, other: "db"}  # the newest of a name


@pytest.mark.parametrize(
    ("given", "passes"),
    [
        (["state=running"], True),
        (["state=exited"], False),
        (["status=exited", "status=running"], True),  # one key repeated: any
        (["state=running,name=^we"], True),
        (["state=running,name=db"], False),  # different keys: all
        (["id=0f4e"], True),
        (["image=example.com/bb"], True),
        (["image=example.com/bb:1.0"], True),
        (["image=other"], False),
        (["label=tier"], True),
        (["label=tier=front"], True),
        (["label=tier=back"], False),
    ],
)
def test_filters(given: list[str], passes: bool) -> None:
    assert podlist.filters(given).passes(row(view(), tier="front")) is passes


@pytest.mark.parametrize("bad", ["color=red", "state", "state=sleeping", "name=(", ""])
def test_a_bad_filter_is_refused(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        podlist.filters([bad])


def test_templates() -> None:
    shown = podlist.list_format("{{.Name}}\\t{{ .State }} {{.IP}}")
    assert isinstance(shown, podlist.Template)
    assert shown.render(row(view()), 0.0) == "web\trunning 172.16.28.5"
    titled = podlist.list_format("table {{.ID}} {{.Image}}")
    assert isinstance(titled, podlist.Template) and titled.header() == "ID IMAGE"
    assert podlist.list_format("json") == "json" and podlist.list_format("table") == "text"


@pytest.mark.parametrize("bad", ["{{.Nope}}", "{{.Name}", "yaml", "{{Name}}"])
def test_a_bad_format_is_refused(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        podlist.list_format(bad)


def test_spare_markers_are_the_pools() -> None:
    from stage0.cri import warm
    from stage0.pool import spares

    assert set(ps.SPARE_MARKERS) == {spares.FILLING, spares.READY, warm.FILLING, warm.READY}


# --- stats ---


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    write(root, {
        "cgroup.controllers": "cpu memory pids io\n",
        f"{POD}/cpu.stat": "usage_usec 9000\n",
        f"{POD}/memory.current": "4000000\n",
        f"{POD}/memory.max": "max\n",
        f"{POD}/memory.stat": "anon 1000000\n",
        f"{POD}/pids.current": "7\n",
        f"{POD}/io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n"
        "253:1 rbytes=1 wbytes=2 rios=1 wios=1\n",
        f"{POD}/payload/init.scope/cgroup.procs": "100\n",
        f"{APP}/cpu.stat": "usage_usec 2500\n",
        f"{APP}/memory.current": "3000000\n",
        f"{APP}/memory.max": "268435456\n",
        f"{APP}/pids.current": "2\n",
        f"{APP}/cgroup.procs": "101\n102\n",
    })  # fmt: skip
    return root


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    header = "Inter-|   Receive\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n"
    write(tmp_path / "proc", {
        "100/net/dev": header + "    lo: 50 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n"
        "  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n",
    })  # fmt: skip
    return tmp_path / "proc"


def test_v2_group_limits_io_and_pids(v2: Path) -> None:
    pod = cgroupfs.limits(str(v2), "/" + POD)
    assert pod == cgroupfs.Limits(None, 7, cgroupfs.BlockIO(4097, 8194))
    assert cgroupfs.limits(str(v2), "/" + APP).memory_limit == 268435456


def test_v1_group_limits_io_and_pids(tmp_path: Path) -> None:
    write(tmp_path, {
        f"memory/{POD}/memory.limit_in_bytes": "9223372036854771712\n",
        f"pids/{POD}/pids.current": "4\n",
        f"blkio/{POD}/blkio.throttle.io_service_bytes": "8:0 Read 512\n8:0 Write 1024\n"
        "8:0 Sync 9\nTotal 1536\n",
    })  # fmt: skip
    assert cgroupfs.limits(str(tmp_path), POD) == cgroupfs.Limits(None, 4, cgroupfs.BlockIO(512, 1024))
    (tmp_path / f"memory/{POD}/memory.limit_in_bytes").write_text("1048576\n")
    assert cgroupfs.limits(str(tmp_path), POD).memory_limit == 1048576
    assert cgroupfs.limits(str(tmp_path), "/elsewhere") == cgroupfs.Limits(None, None, None)
    assert cgroupfs.host_memory("MemTotal:  2048 kB\nMemFree: 1 kB\n") == 2 * 1024 * 1024


def test_pod_usage_from_a_v2_tree(tmp_path: Path, v2: Path, proc: Path) -> None:
    write(tmp_path / "pod", {"unit": "nspod-web.service\n"})
    sample = api_stats.pod_usage(view(path=str(tmp_path / "pod")), str(v2), str(proc))
    assert sample.usage == api_stats.Usage(9_000_000, 4000000, None, 7, cgroupfs.BlockIO(4097, 8194))
    assert (sample.net_rx, sample.net_tx) == (1000, 2000)  # loopback left out
    (app,) = sample.apps
    assert app.usage == api_stats.Usage(2_500_000, 3000000, 268435456, 2, None)
    record = cli_stats.record(sample, {}, 8_000_000)
    assert schema("stats").is_valid([record]), list(schema("stats").iter_errors([record]))
    assert record["memory_percent"] == 50.0 and record["apps"][0]["memory_limit_bytes"] == 268435456
    cells = cli_stats.cells_of(record)
    assert cells[:2] == ["web", "-"] and cells[5] == "7" and cells[6] == "1000B / 2.0KiB"


def test_a_pod_not_running_reads_zero(tmp_path: Path, v2: Path) -> None:
    sample = api_stats.pod_usage(view(path=str(tmp_path)), str(v2))
    assert sample.usage.cpu_ns == 0 and sample.apps == ()


def test_cpu_percent() -> None:
    assert api_stats.cpu_percent(0, 500_000_000, 1.0) == 50.0
    assert api_stats.cpu_percent(0, 4_000_000_000, 1.0) == 400.0  # four cores
    assert api_stats.cpu_percent(10, 5, 1.0) == 0.0 and api_stats.cpu_percent(0, 5, 0.0) == 0.0


# --- inspect ---


def test_a_pods_inspect_json_keeps_its_schema() -> None:
    port = PortSpec(name="http", protocol="tcp", port=80, host_port=8080)
    spec = PodSpec(
        uuid=UUID, machine="web", hostname="web", apps=(), ports=(port,), annotations=(("a", "b"),)
    )
    app = AppView("bb", AppState.EXITED, 143, "SIGTERM", 1001.0, 1002.0, None)
    exited = view(state=PodState.EXITED)
    shown = pod_json(PodDetails(exited, (app,), spec, 1002.0))
    assert schema("inspect").is_valid([shown]), list(schema("inspect").iter_errors([shown]))
    assert shown["networks"] == [] and shown["finished"] == "1970-01-01T00:16:42Z"
    assert shown["ports"] == [
        {"name": "http", "protocol": "tcp", "port": 80, "host_port": 8080, "host_ip": None}
    ]
    assert shown["apps"][0]["exit_code"] == 143 and shown["annotations"] == {"a": "b"}
