"""The default confinement profile of every app (issue #11, item 1), read from inside by the static
probe: rkt's 14 capabilities as the bounding set (or an isolator's retain or remove set), the
seccomp filter answering EPERM, no new privileges for an app that is not root, rkt's hidden
kernel paths. The probe changes nothing on the host: it reads its own state, opens files without
writing, and calls only the harmless, obsolete sysfs(2) as the filter's witness."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from stage1.app_unit import DEFAULT_CAPABILITIES
from tests.conftest import REPO
from tests.integration.test_confinement import probe_lines
from tests.integration.test_pod_units import probe_image
from tests.integration.test_pods import Nspod

pytestmark = pytest.mark.systemd

# capability numbers (linux/capability.h)
CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_TIME": 25, "CAP_MKNOD": 27,
    "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}  # fmt: skip
HIDDEN = ("/proc/kallsyms", "/proc/kcore", "/proc/config.gz", "/sys/firmware", "/sys/module")


def mask(names: tuple[str, ...] | list[str]) -> int:
    return sum(1 << CAPS[name] for name in names)


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, dict[str, str]]:
    """What the probe reports in each kind of pod, run once for the module: kind → {key: value}."""
    base = tmp_path_factory.mktemp("profile")
    nspod = Nspod(base / "data")
    retain: list[dict[str, object]] = [
        {"name": "os/linux/capabilities-retain-set", "value": {"set": ["CAP_NET_BIND_SERVICE"]}}
    ]
    remove: list[dict[str, object]] = [
        {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_NET_RAW", "CAP_CHOWN"]}}
    ]
    pods = {
        "root": (["report"], None, []),
        "user": (["report"], None, ["--user=1000", "--group=1000"]),
        "retain": (["report"], retain, []),
        "remove": (["report"], remove, []),
        "sysfs": (["sysfs"], None, []),
        "paths": (["openr", *HIDDEN, "/proc/self/status"], None, []),
    }
    found: dict[str, dict[str, str]] = {}
    for kind, (args, isolators, flags) in pods.items():
        image = probe_image(base / kind, probe, args, notify=False, isolators=isolators)
        ran = nspod("run", str(image), *flags)
        assert ran.returncode == 0, (kind, ran.stderr)
        found[kind] = {}
        for line in probe_lines(ran.stdout):
            key, _, value = line.partition(" ")
            words = value.split()
            found[kind][f"openr {words[0]}" if key == "openr" else key] = words[-1] if words else ""
    return found


def bounding(report: dict[str, str]) -> int:
    return int(report["capbnd"], 16)


def test_the_default_bounding_set_is_rkts_14(seen: dict[str, dict[str, str]]) -> None:
    assert bounding(seen["root"]) == mask(DEFAULT_CAPABILITIES)


LACKING = (
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
)


@pytest.mark.parametrize("cap", [*LACKING, "CAP_NET_ADMIN", "CAP_DAC_READ_SEARCH"])
def test_a_root_app_lacks(seen: dict[str, dict[str, str]], cap: str) -> None:
    assert not bounding(seen["root"]) & mask([cap]) and not int(seen["root"]["capeff"], 16) & mask([cap])


def test_a_root_app_has_its_bounding_set_effective(seen: dict[str, dict[str, str]]) -> None:
    assert int(seen["root"]["capeff"], 16) == mask(DEFAULT_CAPABILITIES)


def test_a_user_app_has_no_effective_capabilities(seen: dict[str, dict[str, str]]) -> None:
    assert int(seen["user"]["capeff"], 16) == 0 and seen["user"]["uid"] == "1000"
    assert (seen["user"]["gid"], seen["user"]["groups"]) == ("1000", "1000"), seen["user"]


def test_a_user_app_has_no_permitted_or_ambient_capabilities(seen: dict[str, dict[str, str]]) -> None:
    assert (int(seen["user"]["capprm"], 16), int(seen["user"]["capamb"], 16)) == (0, 0), seen["user"]


def test_a_retain_set_is_the_whole_bounding_set(seen: dict[str, dict[str, str]]) -> None:
    assert bounding(seen["retain"]) == mask(["CAP_NET_BIND_SERVICE"])


def test_a_remove_set_comes_off_the_default(seen: dict[str, dict[str, str]]) -> None:
    expected = mask(DEFAULT_CAPABILITIES) & ~mask(["CAP_NET_RAW", "CAP_CHOWN"])
    assert bounding(seen["remove"]) == expected


@pytest.mark.parametrize("kind", ["root", "user"])
def test_every_app_runs_under_a_seccomp_filter(seen: dict[str, dict[str, str]], kind: str) -> None:
    assert seen[kind]["seccomp"] == "2"  # SECCOMP_MODE_FILTER


def test_a_filtered_system_call_fails_with_eperm(seen: dict[str, dict[str, str]]) -> None:
    # ptrace(2) on an untraced process: ESRCH from the kernel, EPERM from nspod's filter (nspawn's own
    # container filter lets it through; it refuses sysfs(2) itself)
    assert (seen["sysfs"]["sysfs"], seen["sysfs"]["ptrace"]) == ("EPERM", "EPERM")


def test_an_app_that_is_not_root_gets_no_new_privileges(seen: dict[str, dict[str, str]]) -> None:
    assert (seen["user"]["nonewprivs"], seen["root"]["nonewprivs"]) == ("1", "0")


@pytest.mark.parametrize("path", HIDDEN)
def test_kernel_paths_are_hidden(seen: dict[str, dict[str, str]], path: str) -> None:
    # covered by an empty file or directory: nothing to read, whatever the app's capabilities
    assert seen["paths"][f"openr {path}"] in ("0", "EACCES", "EPERM", "ENOENT"), seen["paths"]


def test_ordinary_proc_files_stay_readable(seen: dict[str, dict[str, str]]) -> None:
    assert int(seen["paths"]["openr /proc/self/status"]) > 0
    assert re.fullmatch(r"[0-9a-f]{16}", seen["root"]["capbnd"])


@pytest.fixture(scope="module")
def limits_seen(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> list[str]:
    base = tmp_path_factory.mktemp("limits")
    isolators: list[dict[str, object]] = [
        {"name": "resource/memory", "value": {"limit": "512M"}},
        {"name": "resource/cpu", "value": {"limit": "500m"}},
        {"name": "os/linux/oom-score-adj", "value": 300},
    ]
    image = probe_image(base / "img", probe, ["limits"], notify=False, isolators=isolators)
    ran = Nspod(base / "data")("run", str(image))
    assert ran.returncode == 0, ran.stderr
    return probe_lines(ran.stdout)


def test_the_oom_score_adjustment_reads_back(limits_seen: list[str]) -> None:
    assert "oom 300" in limits_seen, limits_seen


# A pod of one app: the app's limits read back whatever the host's cgroup version. On v2 they are
# its own unit's; on a v1 (hybrid) host they are the pod unit's bound, the sum of its apps' limits
# (the pod's systemd gets no v1 controllers to limit one app with; test_update.py checks the sum).
def test_the_memory_limit_reads_back_from_the_cgroupfs(limits_seen: list[str]) -> None:
    assert "memory 512000000" in limits_seen, limits_seen


def test_the_cpu_quota_reads_back_from_the_cgroupfs(limits_seen: list[str]) -> None:
    # v1: cpu.cfs_quota_us and cpu.cfs_period_us; v2: cpu.max "QUOTA PERIOD"; 500m is half a CPU
    quotas = [line.split()[1:] for line in limits_seen if line.startswith("cpu ") and "?" not in line]
    assert any(q[0].isdigit() and int(q[0]) * 2 == int(q[1]) for q in quotas if len(q) == 2), limits_seen


@pytest.fixture(scope="module")
def relaxed_seen(tmp_path_factory: pytest.TempPathFactory, probe: Path) -> dict[str, dict[str, str]]:
    """The probe's report, its sysfs(2) call and a hidden path, with each part lifted in turn."""
    base = tmp_path_factory.mktemp("relaxed")
    image = probe_image(base / "img", probe, ["report"], notify=False)
    found: dict[str, dict[str, str]] = {}
    for part in ("capabilities", "paths", "seccomp"):
        nspod = Nspod(base / part)
        lines: list[str] = []
        for args in (["--exec=/probe", "--", "report"], ["--exec=/probe", "--", "sysfs"],
                     ["--exec=/probe", "--", "openr", "/proc/kallsyms"]):  # fmt: skip
            ran = subprocess.run(
                [*nspod.argv(), "--insecure-options=image," + part, "run", str(image), *args],
                capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
            assert ran.returncode == 0, (part, ran.stderr)
            lines += probe_lines(ran.stdout)
        found[part] = {line.split()[0]: line.split()[-1] for line in lines if line.split()}
    return found


def test_insecure_capabilities_lifts_the_bounding_set_alone(relaxed_seen: dict[str, dict[str, str]]) -> None:
    seen = relaxed_seen["capabilities"]
    assert bounding(seen) & mask(["CAP_SYS_ADMIN"])  # the pod's own set, wider than rkt's 14
    assert (seen["seccomp"], seen["ptrace"], seen["openr"]) == ("2", "EPERM", "0")


def test_insecure_paths_lifts_the_hidden_paths_alone(relaxed_seen: dict[str, dict[str, str]]) -> None:
    seen = relaxed_seen["paths"]
    assert int(seen["openr"]) > 0  # /proc/kallsyms has content again
    assert (bounding(seen), seen["seccomp"], seen["ptrace"]) == (mask(DEFAULT_CAPABILITIES), "2", "EPERM")


def test_insecure_seccomp_lifts_the_filter_alone(relaxed_seen: dict[str, dict[str, str]]) -> None:
    seen = relaxed_seen["seccomp"]
    assert seen["ptrace"] == "ESRCH"  # nspod's filter is gone (nspawn's container filter stays)
    assert (bounding(seen), seen["openr"]) == (mask(DEFAULT_CAPABILITIES), "0")


RETAINED = mask(["CAP_NET_BIND_SERVICE"])
REMOVED = mask(DEFAULT_CAPABILITIES) & ~mask(["CAP_KILL"])


@pytest.mark.parametrize(
    ("args", "flags", "expected"),
    [
        (["report"], ["--caps-retain=CAP_NET_BIND_SERVICE"], ("capbnd", f"{RETAINED:016x}")),
        (["report"], ["--caps-remove=CAP_KILL"], ("capbnd", f"{REMOVED:016x}")),
        (["limits"], ["--oom-score-adj=200"], ("oom", "200")),
        (["report"], ["--supplementary-gids=5,6"], ("groups", "6")),
    ],
)  # fmt: skip
def test_isolator_flags_reach_the_app(
    tmp_path: Path, probe: Path, args: list[str], flags: list[str], expected: tuple[str, str]
) -> None:
    image = probe_image(tmp_path / "img", probe, [], notify=False)
    ran = Nspod(tmp_path / "data")("run", str(image), "--exec=/probe", *flags, "--", *args)
    assert ran.returncode == 0, ran.stderr
    found = {line.split()[0]: line.split()[-1] for line in probe_lines(ran.stdout) if line.split()}
    assert found[expected[0]] == expected[1], ran.stdout
