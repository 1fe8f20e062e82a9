"""The fly flavor (issue #25) runs apps as host units in the host's PID namespace: a door that must
open only for a pod that asks with all-run. programs/hostpid.c looks for a host process every way
a process is reached. Asked for (the control), a fly app reaches it; every other way to a fly pod
without that consent is refused, and a pod prepared as nspawn stays nspawn whatever a later
``--stage1=fly`` with all-run says (the pod's recorded stage1 wins), reaching nothing."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.attacks.conftest import Nspod, attack_image
from tests.attacks.test_hostpid import TRIES
from tests.attacks.test_namespaces import tries

pytestmark = pytest.mark.systemd


@pytest.fixture(scope="module")
def door(
    tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]
) -> Iterator[tuple[Nspod, Path]]:
    marker = f"fly-marker-{secrets.token_hex(6)}"
    process = subprocess.Popen(["/bin/sh", "-c", "sleep 600", marker])
    base = tmp_path_factory.mktemp("flydoor")
    image = attack_image(
        base,
        ["/bin/hostpid"],
        programs={"hostpid": programs["hostpid"]},
        files={"/hostpid-target": f"{marker} {process.pid}\n"},
    )
    try:
        yield Nspod(base / "data"), image
    finally:
        process.kill()
        process.wait()


def test_the_control_a_fly_pod_asked_for_reaches_the_host(door: tuple[Nspod, Path]) -> None:
    nspod, image = door
    ran = nspod("--stage1=fly", "run", "--insecure-options=all-run", str(image))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert tries(ran.stdout).get("scan:/proc") == "ESCAPED", ran.stdout  # no isolation: documented


@pytest.mark.parametrize(
    ("how", "env"),
    [
        (("--stage1=fly", "run"), {}),
        (("run",), {"NSPOD_STAGE1": "fly"}),
        (("--stage1=fly", "run", "--insecure-options=seccomp,paths,capabilities"), {}),  # not all four
        (("--stage1=fly", "prepare"), {}),
    ],
)
def test_no_fly_pod_without_all_run(
    door: tuple[Nspod, Path], how: tuple[str, ...], env: dict[str, str]
) -> None:
    nspod, image = door
    refused = nspod(*how, str(image), env=env)
    assert refused.returncode == 254 and "all-run" in refused.stderr, refused.stderr
    assert refused.stdout == ""  # nothing ran


def test_a_pod_prepared_as_nspawn_stays_nspawn(door: tuple[Nspod, Path]) -> None:
    nspod, image = door
    prepared = nspod("prepare", str(image))
    assert prepared.returncode == 0, prepared.stderr
    uuid = prepared.stdout.strip().splitlines()[-1]
    # all-run and fly at run time: the pod's recorded stage1 (nspawn) runs it all the same
    ran = nspod("--stage1=fly", "--insecure-options=image,all-run", "run-prepared", uuid)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results = tries(ran.stdout)
    assert set(TRIES) <= set(results), results
    assert sorted(t for t, r in results.items() if r == "ESCAPED") == [], results
    assert nspod.status(uuid)["stage1"] == "nspawn"
