"""Issue #23, item 5: /proc/keys showed host root's key descriptions and /proc/timer_list the host's
timers, because an app's fresh procfs (MountAPIVFS=) lacks the masks nspawn puts on the pod's.
programs/procleak.c reads what an attacker wants of /proc, /sys and /dev by every path shape
(/proc/self/.., /proc/thread-self/../../.., /proc/self/root, /proc/1/root, a /proc directory fd, a
procfs of its own); as a root app, in a --private-users pod, as a command ``nspod enter`` runs and
as an app added to an app sandbox, it gets nothing but its controls (/proc/self/status,
/proc/cpuinfo)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import in_sandbox, tries

pytestmark = pytest.mark.systemd

CONTROLS = ("read:/proc/self/status", "read:/proc/cpuinfo")
PLACES = ("app", "private-users", "enter", "sandbox")


@pytest.fixture(scope="module")
def seen(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]
) -> dict[str, dict[str, str]]:
    base = tmp_path_factory.mktemp("procleak")
    image = attack_image(base, ["/bin/sleep", "600"], programs={"procleak": programs["procleak"]})
    nspod = Nspod(base / "data")
    ran = nspod("run", str(image), "--exec=/bin/procleak")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    private = nspod("run", "--private-users", str(image), "--exec=/bin/procleak")
    assert private.returncode == 0, private.stdout + private.stderr
    started = nspod("run", "--detach", "--name=procleak-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "procleak-enter", "--", "/bin/procleak")
        assert entered.returncode == 0, entered.stdout + entered.stderr
    finally:
        nspod("stop", "procleak-enter")
    return {
        "app": tries(ran.stdout),
        "private-users": tries(private.stdout),
        "enter": tries(entered.stdout),
        "sandbox": in_sandbox(nspod, image, "/bin/procleak"),
    }


@pytest.mark.parametrize("place", PLACES)
def test_nothing_of_the_kernel_reads_by_any_path(seen: dict[str, dict[str, str]], place: str) -> None:
    results = seen[place]
    assert results.get("done") == "0", results
    assert all(results[c] == "ESCAPED" for c in CONTROLS), results  # the reader reads
    leaked = sorted(t for t, r in results.items() if r == "ESCAPED" and t not in CONTROLS)
    assert leaked == [], f"{place}: {leaked}"


@pytest.mark.parametrize("place", PLACES)
def test_the_keys_and_timers_are_empty_not_missing(seen: dict[str, dict[str, str]], place: str) -> None:
    # the host has them (the test host's kernel is this one's): covered, as podman covers them
    for path in ("/proc/keys", "/proc/timer_list", "/proc/self/../keys", "/proc/thread-self/../../../keys"):
        assert seen[place][f"read:{path}"] == "EMPTY", seen[place]
