"""The CRI's hostPID (issue #24) runs a sandbox's containers in the host's PID namespace, as host
units (stage1/fly): a door that must open only for a sandbox that asks. programs/hostpid.c looks
for a host process (its number and a marker in its command line) by every way a process is
reached: a scan of /proc, /proc/PID by three path shapes, kill(PID, 0), pidfd_open(PID), a
procfs of its own and setns(2) into /proc/1/ns/pid. As an app of a pod, as a command ``nspod
enter`` runs, and as an app of an app sandbox (what every CRI sandbox that does not ask for
pid=NODE is), it reaches nothing; run on the host itself (the control) it reaches every one."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_namespaces import in_sandbox, tries

pytestmark = pytest.mark.systemd

PLACES = ("app", "enter", "sandbox")
TRIES = (
    "scan:/proc", "read:/proc/PID", "read:/proc/1/root/proc/PID", "read:/proc/self/../PID", "kill:PID",
    "pidfd_open:PID", "mount-proc",
)  # fmt: skip


@pytest.fixture(scope="module")
def host_process() -> Iterator[tuple[str, int]]:
    """A process of the host, its command line marked: (marker, its PID in the host's namespace)."""
    marker = f"hostpid-marker-{secrets.token_hex(6)}"
    process = subprocess.Popen(["/bin/sh", "-c", "sleep 600", marker])
    try:
        yield marker, process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def seen(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path], host_process: tuple[str, int]
) -> dict[str, dict[str, str]]:
    marker, pid = host_process
    base = tmp_path_factory.mktemp("hostpid")
    image = attack_image(
        base,
        ["/bin/sleep", "600"],
        programs={"hostpid": programs["hostpid"]},
        files={"/hostpid-target": f"{marker} {pid}\n"},
    )
    nspod = Nspod(base / "data")
    ran = nspod("run", str(image), "--exec=/bin/hostpid")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    started = nspod("run", "--detach", "--name=hostpid-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "hostpid-enter", "--", "/bin/hostpid")
        assert entered.returncode == 0, entered.stdout + entered.stderr
    finally:
        nspod("stop", "hostpid-enter")
    control = subprocess.run([str(programs["hostpid"]), marker, str(pid)], capture_output=True, text=True)
    return {
        "app": tries(ran.stdout),
        "enter": tries(entered.stdout),
        "sandbox": in_sandbox(nspod, image, "/bin/hostpid"),
        "host": tries(control.stdout),
    }


def test_the_control_on_the_host_finds_the_process_every_way(seen: dict[str, dict[str, str]]) -> None:
    found = seen["host"]
    assert found.get("done") == "0", found
    assert all(found[t] == "ESCAPED" for t in TRIES if t != "read:/proc/1/root/proc/PID"), found


@pytest.mark.parametrize("place", PLACES)
def test_a_pod_that_did_not_ask_for_host_pid_reaches_no_host_process(
    seen: dict[str, dict[str, str]], place: str
) -> None:
    results = seen[place]
    assert results.get("done") == "0", results
    assert set(TRIES) <= set(results), results  # every try ran
    escaped = sorted(t for t, r in results.items() if r == "ESCAPED")
    assert escaped == [], f"{place}: {escaped} ({results})"
