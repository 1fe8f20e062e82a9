"""Issue #26, item 2: an app's kernel protections became read-only binds of the pod's /proc/sys and
/sys (stage1/kernel_binds.py) where systemd's ProtectKernelTunables=, …Modules=, …Logs= and
ProtectControlGroups= were. programs/kernwrite.c tries what those settings denied: opening the
kernel's knobs for writing (/proc/sys, /proc/sysrq-trigger, /sys, the pod's and the app's own
cgroup, /proc/kmsg, /dev/kmsg) by every path shape (/proc/self/.., /proc/thread-self, /proc/self/root,
every /proc/PID/root it sees, a /proc fd, the image's symlinks), a writable tree by every mount call
(remount, bind, a procfs, sysfs or cgroup2 of its own, umount of the covering bind, fsopen, fspick,
open_tree, mount_setattr, move_mount) and module loading and syslog(2) by three ABIs: as a root
app, as user 1000, in a --private-users pod, as a command ``nspod enter`` runs and as an app added
to an app sandbox, and with the image's own filter (a seccomp-remove-set of reboot alone: every
mount call reaches the kernel). Nothing gets through; every mount under /proc and /sys the app
sees is read-only (its own /proc excepted)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import tries

pytestmark = pytest.mark.systemd

PLACES: dict[str, tuple[list[str], list[str]]] = {
    "root": ([], []),
    "user": ([], ["--user=1000", "--group=1000"]),
    "private-users": (["--private-users"], []),
    "enter": ([], []),
    "sandbox": ([], []),
    "image-filter": ([], []),  # the image's own seccomp-remove-set (reboot alone) for nspod's
}
# an image may bring a filter of its own (appc's seccomp-remove-set): one that leaves every mount
# call and chroot allowed, so that the bounding set and the binds hold alone
WEAK_FILTER = [{"name": "os/linux/seccomp-remove-set", "value": {"set": ["reboot"], "errno": "EPERM"}}]
# the image's symlinks into the kernel's trees (the path shape through a link)
LINKS = {"/ks": "/proc/sys/kernel", "/kcg": "../sys/fs/cgroup", "/ksysrq": "proc/sysrq-trigger"}
# mounts under /proc an app may write: its fresh procfs itself (per-process files) and the device
# nodes' file systems systemd puts there for it
WRITABLE_MOUNTS = ("/proc",)


def _sandboxed(nspod: Nspod, image: Path) -> dict[str, str]:
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    try:
        added = nspod("app", "add", uuid, str(image), "--name", "attack", "--exec", "/bin/kernwrite")
        assert added.returncode == 0, added.stderr
        assert nspod("app", "start", uuid, "--app", "attack").returncode == 0
        deadline = time.monotonic() + 60
        while "done" not in (seen := tries(nspod("logs", uuid, "--app", "attack").stdout)):
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
        return seen
    finally:
        nspod("stop", uuid)
        nspod("rm", uuid)


def _attack(nspod: Nspod, image: Path, place: str) -> dict[str, str]:
    if place == "sandbox":
        return _sandboxed(nspod, image)
    if place != "enter":
        pod, app = PLACES[place]
        ran = nspod("run", *pod, str(image), "--exec=/bin/kernwrite", *app)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return tries(ran.stdout)
    started = nspod("run", "--detach", "--name=kernwrite-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "kernwrite-enter", "--", "/bin/kernwrite")
        assert entered.returncode == 0, entered.stdout + entered.stderr
        return tries(entered.stdout)
    finally:
        nspod("stop", "kernwrite-enter")


@pytest.fixture(scope="module")
def seen(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]
) -> dict[str, dict[str, str]]:
    base = tmp_path_factory.mktemp("kernwrite")
    images = {}
    for kind, app in (("default", {}), ("image-filter", {"isolators": WEAK_FILTER})):
        (base / kind).mkdir()
        images[kind] = attack_image(
            base / kind,
            ["/bin/sleep", "600"],
            programs={"kernwrite": programs["kernwrite"]},
            links=LINKS,
            files={"/kernwrite-image": ""},  # the program runs nowhere else
            app=app,
        )
    nspod = Nspod(base / "data")
    found = {place: _attack(nspod, images.get(place, images["default"]), place) for place in PLACES}
    if dump := os.environ.get("NSPOD_KERNWRITE_DUMP"):  # every try's result, for a reviewer
        Path(dump).write_text(json.dumps(found, indent=1, sort_keys=True))
    return found


@pytest.mark.parametrize("place", PLACES)
def test_no_app_writes_a_kernel_knob_by_any_path_or_mount(
    seen: dict[str, dict[str, str]], place: str
) -> None:
    results = seen[place]
    assert results.get("done") == "0", results  # the program ran to its end
    assert len(results) >= 120, len(results)  # every try reported
    escaped = sorted(
        t
        for t, r in results.items()
        if r == "ESCAPED" and t.removeprefix("mountinfo:") not in WRITABLE_MOUNTS
    )
    assert escaped == [], f"{place}: {escaped}"
    assert int(results["cgroup:files"]) >= 10, results  # its cgroup's files were found and tried


@pytest.mark.parametrize("place", PLACES)
def test_the_kernel_trees_are_read_only_mounts(seen: dict[str, dict[str, str]], place: str) -> None:
    trees = ("/proc/sys", "/proc/sys/kernel", "/proc/sys/net", "/sys", "/sys/fs/cgroup", "/sys/kernel")
    assert {t: seen[place].get(f"rdonly:{t}") for t in trees} == dict.fromkeys(trees, "RO"), seen[place]
    # a kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger (the test host's has none)
    assert seen[place]["rdonly:/proc/sysrq-trigger"] in ("RO", "ENOENT"), seen[place]


@pytest.mark.parametrize("place", PLACES)
def test_module_loading_and_syslog_are_denied_by_the_filter(
    seen: dict[str, dict[str, str]], place: str
) -> None:
    calls = {t: r for t, r in seen[place].items() if t.startswith("module:")}
    assert len(calls) == 12 and set(calls.values()) <= {"EPERM", "ENOSYS"}, calls
    assert calls["module:init_module"] == calls["module:finit_module"] == "EPERM", calls
