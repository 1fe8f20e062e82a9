"""Issue #23, item 4: apps made user namespaces with clone and clone3 (only unshare was denied) and
got every capability over new network namespaces, nf_tables included (the precondition of
CVE-2022-1015, CVE-2023-32233, CVE-2024-1086), root or not, in --private-users pods too; io_uring
was reachable. programs/userns.c tries every namespace kind by clone and clone3 (also through the
i386 ABI), unshare and setns on the pod's systemd's namespaces, and io_uring's three calls: as a root
app, as user 1000 (NoNewPrivileges), in a --private-users pod and as a command ``nspod enter`` runs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image

pytestmark = pytest.mark.systemd

# where each attack runs: `nspod run`'s pod options and app options; "enter": entered into a running pod
PLACES: dict[str, tuple[list[str], list[str]]] = {
    "root": ([], []),
    "user": ([], ["--user=1000", "--group=1000"]),
    "private-users": (["--private-users"], []),
    "enter": ([], []),
    "sandbox": ([], []),  # added to an app sandbox (nspod app add)
}


def tries(stdout: str) -> dict[str, str]:
    """``TRY RESULT`` lines (an app's output is labelled ``app: line``) → {TRY: RESULT}."""
    lines = (line.split(": ", 1)[-1].split() for line in stdout.splitlines())
    return {words[0]: words[1] for words in lines if len(words) >= 2}


def attack(nspod: Nspod, image: Path, place: str, *global_options: str) -> dict[str, str]:
    if place == "sandbox":
        return in_sandbox(nspod, image, "/bin/userns")
    if place != "enter":
        pod, app = PLACES[place]
        ran = nspod(*global_options, "run", *pod, str(image), "--exec=/bin/userns", *app)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        return tries(ran.stdout)
    started = nspod(*global_options, "run", "--detach", "--name=userns-enter", str(image))
    assert started.returncode == 0, started.stderr
    try:
        entered = nspod("enter", "userns-enter", "--", "/bin/userns")
        assert entered.returncode == 0, entered.stdout + entered.stderr
        return tries(entered.stdout)
    finally:
        nspod("stop", "userns-enter")


def in_sandbox(nspod: Nspod, image: Path, program: str) -> dict[str, str]:
    """What ``program`` says as an app added to an app sandbox and started there."""
    made = nspod("app", "sandbox")
    assert made.returncode == 0, made.stderr
    uuid = made.stdout.strip().splitlines()[-1]
    try:
        added = nspod("app", "add", uuid, str(image), "--name", "attack", "--exec", program)
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


@pytest.fixture(scope="module")
def seen(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]
) -> dict[str, dict[str, str]]:
    base = tmp_path_factory.mktemp("userns")
    image = attack_image(base, ["/bin/sleep", "600"], programs={"userns": programs["userns"]})
    nspod = Nspod(base / "data")
    return {place: attack(nspod, image, place) for place in PLACES}


@pytest.mark.parametrize("place", PLACES)
def test_no_app_makes_a_namespace_or_an_io_uring(seen: dict[str, dict[str, str]], place: str) -> None:
    results = seen[place]
    assert results.get("done") == "0", results  # the program ran to its end
    assert len(results) >= 49, results  # every try reported (69 on x86-64, with the i386 ABI)
    escaped = sorted(t for t, r in results.items() if r == "ESCAPED")
    assert escaped == [], f"{place}: {escaped}"


@pytest.mark.parametrize("place", PLACES)
def test_clone3_fails_with_enosys_so_libc_falls_back_to_clone(
    seen: dict[str, dict[str, str]], place: str
) -> None:
    # systemd 252's RestrictNamespaces=: clone3's flags are out of seccomp's reach, the call goes whole
    clone3 = {t: r for t, r in seen[place].items() if t.startswith(("clone3:", "clone3-i386:"))}
    assert clone3 and set(clone3.values()) == {"ENOSYS"}, clone3


@pytest.mark.parametrize("place", PLACES)
def test_io_uring_is_denied_with_eperm(seen: dict[str, dict[str, str]], place: str) -> None:
    calls = ("io_uring_setup", "io_uring_enter", "io_uring_register", "io_uring_setup-i386")
    assert {seen[place].get(c, "EPERM") for c in calls} == {"EPERM"}, seen[place]  # i386: x86-64 only
    assert "io_uring_setup" in seen[place]


def test_insecure_namespaces_lifts_the_restriction_on_purpose(
    tmp_path: Path, programs: Mapping[str, Path]
) -> None:
    # the word works (the attack program sees it), and lifts namespaces alone: io_uring stays denied
    image = attack_image(tmp_path, ["/bin/sleep", "600"], programs={"userns": programs["userns"]})
    results = attack(Nspod(tmp_path / "data"), image, "root", "--insecure-options=image,namespaces")
    assert results["clone:user"] == "ESCAPED" and results["clone:user+net+nf_tables"] == "ESCAPED", results
    assert results["io_uring_setup"] == "EPERM", results
