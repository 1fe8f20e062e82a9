"""CRI stats from cgroup v1 and v2 fixture trees (stage0/cri/cgroups.py, stats.py), and
UpdateContainerResources' translation (stage0/cri/resources.py, stage1/nspawn/update.py)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from stage0.cri import resources, stats
from stage0.host import cgroups
from stage1.abi import Error
from stage1.nspawn.update import INFINITY, cpu_list, cri_properties
from stage1.transient import Property

POD = "machine.slice/nspod-web.service"
APP = f"{POD}/payload/system.slice/app.service"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _pod_dir(tmp_path: Path) -> Path:
    pod = tmp_path / "pod"
    _write(pod, {"unit": "nspod-web.service\n", "overlay/app/upper/etc/hello": "hello"})
    return pod


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    _write(root, {
        "cgroup.controllers": "cpu memory pids\n",
        f"{POD}/cpu.stat": "usage_usec 9000\nuser_usec 6000\n",
        f"{POD}/memory.current": "4000000\n",
        f"{POD}/memory.stat": "anon 1000000\ninactive_file 500000\npgfault 10\npgmajfault 1\n",
        f"{POD}/pids.current": "7\n",
        f"{POD}/payload/init.scope/cgroup.procs": "100\n",
        f"{APP}/cpu.stat": "usage_usec 2500\n",
        f"{APP}/memory.current": "3000000\n",
        f"{APP}/memory.stat": "anon 2000000\ninactive_file 1000000\npgfault 5\npgmajfault 0\n",
        f"{APP}/cgroup.procs": "101\n102\n",
    })  # fmt: skip
    return root


def test_v2(v2: Path, tmp_path: Path) -> None:
    assert cgroups.unified(str(v2))
    assert cgroups.find_group(str(v2), "nspod-web.service") == f"/{POD}"
    assert cgroups.find_group(str(v2), "app.service", below=f"/{POD}") == f"/{APP}"
    usage = cgroups.usage(str(v2), f"/{APP}")
    assert usage.cpu_ns == 2_500_000
    assert (usage.memory_bytes, usage.working_set_bytes, usage.rss_bytes) == (
        3_000_000,
        2_000_000,
        2_000_000,
    )
    assert (usage.page_faults, usage.processes) == (5, 2)  # no pids.current: the processes counted
    sample = stats.container_stats(str(_pod_dir(tmp_path)), "app", root=str(v2))
    assert sample.cpu.usage.cpu_ns == 2_500_000 and sample.cpu.timestamp_ns > 0
    assert sample.writable_layer.inodes == 2 and sample.writable_layer.bytes > 0  # etc/ and etc/hello
    pod = stats.pod_stats(str(_pod_dir(tmp_path)), root=str(v2), proc=str(tmp_path / "proc"))
    assert pod.cpu.usage.processes == 7 and pod.cpu.usage.working_set_bytes == 3_500_000


def test_v1_with_and_without_an_apps_own_controllers(tmp_path: Path) -> None:
    """A pod's systemd gets no v1 controllers: its app's numbers come from its processes."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    _write(root, {
        f"systemd/{APP}/cgroup.procs": "101\n",
        f"systemd/{POD}/payload/init.scope/cgroup.procs": "100\n",
        f"cpuacct/{POD}/cpuacct.usage": "123456789\n",
        f"memory/{POD}/memory.usage_in_bytes": "8000000\n",
        f"memory/{POD}/memory.stat": "total_rss 3000000\ntotal_inactive_file 2000000\ntotal_pgfault 9\n",
    })  # fmt: skip
    # pid 101: "(my app)" with a space; minflt 11, majflt 2, utime 30, stime 20 ticks, rss 5 pages
    fields = ["S", *["0"] * 6, "11", "0", "2", "0", "30", "20", *["0"] * 8, "5", *["0"] * 20]
    _write(proc, {
        "101/stat": "101 (my app) " + " ".join(fields) + "\n",
        "100/net/dev": "Inter-|   Receive |  Transmit\n face |bytes packets errs ...\n"
        "    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n"
        "  eth0: 2000 20 3 0 0 0 0 0 1000 10 4 0 0 0 0 0\n",
    })  # fmt: skip
    assert not cgroups.unified(str(root))
    app = cgroups.find_group(str(root), "app.service", below=f"/{POD}")
    assert app == f"/{APP}"
    usage = cgroups.usage(str(root), app, str(proc))
    assert usage.cpu_ns == 50 * TICK and usage.working_set_bytes == 5 * PAGE
    assert (usage.page_faults, usage.major_page_faults, usage.processes) == (11, 2, 1)
    pod = cgroups.usage(str(root), f"/{POD}", str(proc))
    assert pod.cpu_ns == 123456789 and pod.working_set_bytes == 6_000_000 and pod.rss_bytes == 3_000_000
    sampled = stats.pod_stats(str(_pod_dir(tmp_path)), root=str(root), proc=str(proc))
    assert sampled.interfaces == (cgroups.Interface("eth0", 2000, 3, 1000, 4),)


def test_a_container_that_does_not_run_has_zero_stats(tmp_path: Path, v2: Path) -> None:
    sample = stats.container_stats(str(_pod_dir(tmp_path)), "gone", root=str(v2))
    assert sample.cpu.usage.cpu_ns == 0 and sample.cpu.timestamp_ns > 0


def test_the_cpu_rate_from_two_samples(v2: Path) -> None:
    stats.sample(f"/{APP}", str(v2))
    (v2 / APP / "cpu.stat").write_text("usage_usec 1002500\n")  # one more CPU second
    later = stats.sample(f"/{APP}", str(v2))
    assert later.nano_cores is not None and later.nano_cores > 1_000_000_000  # > 1 core in < 1 s


def test_into_messages(tmp_path: Path, v2: Path) -> None:
    def value() -> SimpleNamespace:
        return SimpleNamespace(value=None)

    def message() -> SimpleNamespace:
        cpu = SimpleNamespace(timestamp=0, usage_core_nano_seconds=value(), usage_nano_cores=value())
        names = ("working_set_bytes", "usage_bytes", "rss_bytes", "page_faults", "major_page_faults")
        memory = SimpleNamespace(timestamp=0, **{k: value() for k in names})
        layer = SimpleNamespace(
            timestamp=0, fs_id=SimpleNamespace(), used_bytes=value(), inodes_used=value()
        )
        return SimpleNamespace(cpu=cpu, memory=memory, writable_layer=layer)

    out = message()
    stats.fill_container(out, stats.container_stats(str(_pod_dir(tmp_path)), "app", root=str(v2)))
    assert out.cpu.usage_core_nano_seconds.value == 2_500_000
    assert out.memory.working_set_bytes.value == 2_000_000 and out.memory.timestamp > 0
    assert out.writable_layer.inodes_used.value == 2
    assert out.writable_layer.fs_id.mountpoint.endswith("overlay/app/upper")


def test_label_selector() -> None:
    assert stats.selected({"a": "1", "b": "2"}, {"a": "1"})
    assert stats.selected({"a": "1"}, {})
    assert not stats.selected({"a": "1"}, {"a": "2"})
    assert not stats.selected({}, {"a": "1"})


def test_disk_usage_counts_a_linked_file_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10000)
    os.link(tmp_path / "a", tmp_path / "b")
    os.symlink("/etc", tmp_path / "c")  # not followed
    usage = cgroups.disk_usage(str(tmp_path))
    assert usage.inodes == 2 and usage.bytes >= 10000
    assert cgroups.disk_usage(str(tmp_path / "missing")) == cgroups.DiskUsage(0, 0)


def test_cri_resources_as_properties() -> None:
    assert cpu_list("0-2,5") == bytes([0b00100111])
    assert cpu_list("9") == bytes([0, 0b10])
    with pytest.raises(Error):
        cpu_list("x-1")
    assert cri_properties(shares=512, quota_us=50_000, period_us=100_000, cpus="0", mems="0") == (
        Property("CPUShares", "t", 512),
        Property("CPUQuotaPeriodUSec", "t", 100_000),
        Property("CPUQuotaPerSecUSec", "t", 500_000),  # half a CPU
        Property("AllowedCPUs", "ay", b"\x01"),
        Property("AllowedMemoryNodes", "ay", b"\x01"),
    )
    assert cri_properties(quota_us=-1) == (Property("CPUQuotaPerSecUSec", "t", INFINITY),)
    assert cri_properties() == ()


def test_stage1_args_of_a_cri_update() -> None:
    linux = SimpleNamespace(memory_limit_in_bytes=64 << 20, cpu_shares=256, cpu_period=0, cpu_quota=20_000,
                            cpuset_cpus="0-1", cpuset_mems="", oom_score_adj=0)  # fmt: skip
    assert resources.stage1_args(linux) == [
        "--memory=67108864", "--cpu-shares=256", "--cpu-quota-us=20000", "--cpuset-cpus=0-1",
    ]  # fmt: skip


def test_oom_score_adj_for_every_process(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "proc"
    _write(root, {f"systemd/{APP}/cgroup.procs": "101\n102\n"})
    _write(proc, {"101/oom_score_adj": "0\n"})  # 102 ended meanwhile
    assert resources.set_oom_score_adj(f"/{APP}", 500, str(root), str(proc)) == 1
    assert (proc / "101/oom_score_adj").read_text() == "500\n"
    with pytest.raises(resources.UpdateError):
        resources.set_oom_score_adj(f"/{APP}", 1001, str(root), str(proc))
