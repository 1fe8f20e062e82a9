"""Issue #26: an app's kernel protections are binds of the pod's own /proc/sys and /sys (and
/proc/sysrq-trigger, /proc/{irq,bus,fs,…} read-only) instead of systemd's remounts
(stage1/kernel_binds.py). programs/kwrite.c opens every knob for writing by every path shape
(the path, /proc/self/root, /proc/thread-self/root, /proc/1/root, /proc/self/cwd, a directory
fd, /proc/self/fd of an O_PATH fd) and tries to undo the binds (umount, a read-write remount, a
sysfs of its own, a user namespace first): as a root app, as a command ``nspod enter`` runs and
as an app added to an app sandbox, nothing opens but its control (a file of its own root)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import in_sandbox, tries

pytestmark = pytest.mark.systemd

CONTROL = "write:/kwrite-control"
PLACES = ("app", "enter", "sandbox")


@pytest.fixture(scope="module")
def seen(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]
) -> dict[str, dict[str, str]]:
    base = tmp_path_factory.mktemp("kwrite")
    image = attack_image(base, ["/bin/sleep", "600"], programs={"kwrite": programs["kwrite"]})
    nspod = Nspod(base / "data")
    ran = nspod("run", str(image), "--exec=/bin/kwrite")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    started = nspod("run", "--detach", "--name=kwrite-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "kwrite-enter", "--", "/bin/kwrite")
        assert entered.returncode == 0, entered.stdout + entered.stderr
    finally:
        nspod("stop", "kwrite-enter")
    return {
        "app": tries(ran.stdout),
        "enter": tries(entered.stdout),
        "sandbox": in_sandbox(nspod, image, "/bin/kwrite"),
    }


@pytest.mark.parametrize("place", PLACES)
def test_no_kernel_knob_opens_for_writing_by_any_path(seen: dict[str, dict[str, str]], place: str) -> None:
    results = seen[place]
    assert results.get("done") == "0", results
    assert results[CONTROL] == "ESCAPED", results  # the writer writes
    escaped = sorted(t for t, r in results.items() if r == "ESCAPED" and t != CONTROL)
    assert escaped == [], f"{place}: {escaped}"


@pytest.mark.parametrize("place", PLACES)
def test_the_knobs_are_there_read_only_not_missing(seen: dict[str, dict[str, str]], place: str) -> None:
    # read-only, as ProtectKernelTunables= left them, not hidden: a reader of /proc/sys still reads
    for knob in ("/proc/sys/vm/overcommit_memory", "/proc/sys/net/ipv4/ip_forward", "/proc/sysrq-trigger"):
        assert seen[place][f"write:{knob}"] == "EROFS", seen[place]
    assert seen[place]["umount-proc-sys"] == "EPERM" and seen[place]["remount-sys"] == "EPERM", seen[place]
