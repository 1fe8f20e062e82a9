"""The CRI's seccomp profiles (issue #24): a CRI sandbox's nspawn loads no filter of its own, so a
container has exactly the filter its request asks for. What that must not open: a RuntimeDefault
container, in its main process and in what ExecSync runs, still cannot make a user namespace by
any call (clone, clone3, unshare, the i386 ABI: programs/userns.c) nor reach keyctl or mount; an
Unconfined container of a request that is not privileged has no filter at all (the CRI's word),
and its capabilities are the boundary: no mount, no new mount or network namespace, no host
name, module, reboot, clock, swap, raw I/O, ptrace of the pod's systemd or open_by_handle_at
(programs/capsbound.c)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.attacks.test_namespaces import tries
from tests.conftest import STRICT
from tests.harness.registry import Layout, Registry
from tests.integration.test_cri import CRICTL, REPO, Cri, _install_units

pytestmark = pytest.mark.systemd
# Docker's profile refuses these by name; nspod's default besides them, RestrictNamespaces=
BOUNDED = ("mount", "umount", "unshare-mnt", "unshare-net", "sethostname", "finit_module", "reboot",
           "open_by_handle_at", "ptrace", "settimeofday", "swapon", "iopl")  # fmt: skip


@pytest.fixture(scope="module")
def cri(tmp_path_factory: pytest.TempPathFactory, programs: Mapping[str, Path]) -> Iterator[Cri]:
    if not CRICTL.exists():
        if STRICT:
            pytest.fail(f"{CRICTL} is missing: bash /work/shared/cri/build-cri-tools.sh {CRICTL.parent}")
        pytest.skip("crictl is not built")
    base = tmp_path_factory.mktemp("cri-seccomp")
    registry = Registry.start(base / "registry")
    try:
        layout = Layout(base / "layout")
        layout.busybox("attack", applets=("sh", "cat", "grep", "sleep", "true"))
        tar = base / "programs.tar"
        with tarfile.open(tar, "w") as archive:
            for name in ("userns", "capsbound"):
                archive.add(programs[name], arcname=f"bin/{name}")
        layout.raw_layer("attack", tar)
        layout.config("attack", "--config.cmd", "/bin/sh", "--config.env", "PATH=/bin")
        image = f"{registry.host}/attack:latest"
        layout.push("attack", image)
        data = base / "data"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        fetched = subprocess.run(
            [sys.executable, "-m", "stage0", "--dir", str(data), "--insecure-options=image,http", "fetch",
             f"docker://{image}"], capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert fetched.returncode == 0, fetched.stderr
        _install_units(data)
        (base / "work/logs").mkdir(parents=True)
        yield Cri(data, image, base / "work")
    finally:
        subprocess.run(["systemctl", "stop", "nspod-cri.socket", "nspod-cri.service"], check=False)
        registry.stop()


def container(cri: Cri, pod: str, name: str, security: dict[str, object], program: str) -> str:
    config = cri.write(f"ctr-{name}.json", {
        "metadata": {"name": name}, "image": {"image": cri.image}, "log_path": f"{name}.log",
        "command": ["/bin/sh", "-c", f"{program}; echo done 0; sleep 600"],
        "linux": {"security_context": security},
    })  # fmt: skip
    ident = cri("create", pod, config, cri.sandbox_config("seccomp")).strip()
    cri("start", ident)
    return ident


def main_tries(cri: Cri, ident: str) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while "done" not in (seen := tries(cri("logs", ident, check=False))):
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)
    return seen


def exec_tries(cri: Cri, ident: str, program: str) -> dict[str, str]:
    return tries(cri("exec", "-s", ident, program, check=False))


PROFILES: dict[str, dict[str, object]] = {
    "runtime/default": {"seccomp_profile_path": "runtime/default"},
    "RuntimeDefault": {"seccomp": {"profile_type": 0}},
}


@pytest.fixture(scope="module")
def sandbox(cri: Cri) -> Iterator[str]:
    pod = cri("runp", cri.sandbox_config("seccomp")).strip()
    yield pod
    cri("stopp", pod)
    cri("rmp", pod)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_runtime_default_container_makes_no_namespace(cri: Cri, sandbox: str, profile: str) -> None:
    name = "default-" + profile.replace("/", "-").lower()
    ident = container(cri, sandbox, name, PROFILES[profile], "/bin/userns")
    for seen in (main_tries(cri, ident), exec_tries(cri, ident, "/bin/userns")):
        assert len(seen) >= 49, seen  # every try reported
        assert sorted(t for t, r in seen.items() if r == "ESCAPED") == [], seen
    for seen in (exec_tries(cri, ident, "/bin/capsbound"),):
        assert seen["keyctl"] == "EPERM" and seen["mount"] == "EPERM", seen
        assert sorted(t for t, r in seen.items() if r == "ESCAPED") == [], seen
    status = cri("exec", "-s", ident, "grep", "Seccomp:", "/proc/self/status")
    assert status.split() == ["Seccomp:", "2"], status


def test_an_unconfined_container_is_bounded_by_its_capabilities(cri: Cri, sandbox: str) -> None:
    ident = container(cri, sandbox, "unconfined", {"seccomp_profile_path": "unconfined"}, "/bin/capsbound")
    status = cri("exec", "-s", ident, "grep", "Seccomp:", "/proc/self/status")
    assert status.split() == ["Seccomp:", "0"], status  # truly no filter: what the request asked
    for seen in (main_tries(cri, ident), exec_tries(cri, ident, "/bin/capsbound")):
        assert {t: seen.get(t) for t in BOUNDED if seen.get(t) == "ESCAPED"} == {}, seen
        assert all(t in seen for t in BOUNDED), seen
    listed = json.loads(cri("inspect", ident))["status"]["state"]
    assert listed == "CONTAINER_RUNNING"
