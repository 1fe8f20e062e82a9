"""The measure of issue #24: cri-tools v1.26.1's ``critest``, the CRI's own conformance suite, against
``nspod cri`` started by its socket unit (this checkout's code, a data dir of the test's own), every
image it pulls served by a local registry (tests/harness/cri_images.py) that registries.conf mirrors
registry.k8s.io and gcr.io to. The specs skipped are named in SKIPPED with their reasons (and in
the README): the image pinned by a digest nobody can rebuild, and what nspod cannot do yet. The
test fails naming every spec that failed.

critest is not run with ``--registry-prefix``: that flag renames the images it pulls but not the
names it then asks for (``ImageStatus``, ``CreateContainer``, the RepoTags it expects), so only a
mirror keeps the names the specs compare."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, STRICT
from tests.harness.registry import Registry
from tests.integration.test_cri_images import registry  # noqa: F401 (the fixture)

pytestmark = pytest.mark.systemd

TOOLS = Path(os.environ.get("NSPOD_CRI_TOOLS", "/var/cache/nspod-tests/cri"))
SOURCE = Path(os.environ.get("NSPOD_CRI_SOURCE", REPO.parent / "shared/cri"))
SOCKET = "/run/nspod/cri.sock"
ENDPOINT = f"unix://{SOCKET}"
UNITS = ("nspod-cri.socket", "nspod-cri.service")
RUNTIME_UNITS = Path("/run/systemd/system")
# The specs skipped, each with its reason (the README's "Not supported yet" names them too). The
# digest spec can never run here: its image is pinned by a digest (test-image-digest@sha256:9700f9…)
# that only gcr.io's bytes have, and a registry here cannot serve content with a sha256 it does not
# have. The others are what nspod cannot do yet: each is removed from here when it passes.
DIGEST = "public image with digest should be pulled and removed"
SKIPPED: dict[str, str] = {
    DIGEST: "the image is pinned by a digest only gcr.io's bytes have; no network here",
}
TIMEOUT = 40 * 60


def cri_tools() -> Path:
    """critest and crictl, built from the cri-tools tarball beside the checkout when missing
    (`make test` builds them before the test host boots: the build is offline, but slow)."""
    if not (TOOLS / "critest").exists() and (SOURCE / "build-cri-tools.sh").exists():
        subprocess.run(["bash", str(SOURCE / "build-cri-tools.sh"), str(TOOLS)], check=False, timeout=900)
    if not (TOOLS / "critest").exists():
        message = f"critest is not built in {TOOLS} (tests/harness: make test builds it from {SOURCE})"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return TOOLS


def systemctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemctl", *args], check=check, capture_output=True, text=True)


@pytest.fixture(scope="module")
def cri_service(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # noqa: F811
    """``nspod cri`` behind its shipped socket unit, run from this checkout on a data dir and a
    configuration of its own: registries.conf mirrors the two registries critest names."""
    for unit in UNITS:
        if not (REPO / "units" / unit).exists():
            pytest.fail(f"units/{unit} is missing (the CRI service's units)")
    home = tmp_path_factory.mktemp("cri-service")
    config, data = home / "etc", home / "data"
    config.mkdir()
    host = registry.host
    (config / "registries.conf").write_text(
        f"insecure = {host}\nmirror = registry.k8s.io={host}\nmirror = gcr.io={host}\n"
    )
    for unit in UNITS:
        shutil.copy(REPO / "units" / unit, RUNTIME_UNITS / unit)
    drop_in = RUNTIME_UNITS / "nspod-cri.service.d/50-checkout.conf"
    drop_in.parent.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(
        f"[Service]\nEnvironment=PYTHONPATH={REPO}\nExecStart=\nExecStart={sys.executable} -m stage0"
        f" --dir {data} --local-config {config} cri\nPrivateTmp=no\nProtectHome=no\n"
    )
    systemctl("daemon-reload")
    systemctl("start", "nspod-cri.socket")
    try:
        yield data
    finally:
        crictl = [str(TOOLS / "crictl"), "--runtime-endpoint", ENDPOINT, "--timeout", "60s"]
        if (TOOLS / "crictl").exists():  # what a failed spec left: sandboxes go with their containers
            subprocess.run(
                [*crictl, "rmp", "--all", "--force"], capture_output=True, timeout=600, check=False
            )
        systemctl("stop", *UNITS, check=False)
        for unit in UNITS:
            (RUNTIME_UNITS / unit).unlink(missing_ok=True)
        shutil.rmtree(drop_in.parent, ignore_errors=True)
        systemctl("daemon-reload", check=False)
        subprocess.run(
            [sys.executable, "-m", "stage0", "--dir", str(data), "gc", "--grace-period=0s"],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, timeout=300, check=False,
        )  # fmt: skip


def spec_results(report: Path) -> list[tuple[str, str, str]]:
    """(full spec name, state, failure message) of every ``It`` in a ginkgo v2 JSON report."""
    results = []
    for suite in json.loads(report.read_text()):
        for spec in suite.get("SpecReports") or []:
            if spec.get("LeafNodeType") != "It":
                continue
            name = " ".join([*(spec.get("ContainerHierarchyTexts") or []), spec.get("LeafNodeText", "")])
            failure = (spec.get("Failure") or {}).get("Message", "")
            results.append((name, str(spec.get("State")), failure.splitlines()[0] if failure else ""))
    return results


def areas(results: list[tuple[str, str, str]]) -> str:
    """Counts by the suite's top-level groups ("[k8s.io] Image Manager" …): who to route failures to."""
    table: dict[str, dict[str, int]] = {}
    for name, state, _ in results:
        area = name.removeprefix("[k8s.io] ").split(" runtime ")[0].split(" should ")[0].split(" when ")[0]
        counts = table.setdefault(area, {})
        counts[state] = counts.get(state, 0) + 1
    return "\n".join(f"  {area}: {counts}" for area, counts in sorted(table.items()))


def test_critest_conformance(cri_service: Path, tmp_path: Path) -> None:
    tools = cri_tools()
    # kept where NSPOD_CRITEST_DIR says (pytest's own temporary directories rotate away)
    out = Path(os.environ.get("NSPOD_CRITEST_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "critest.json"
    command = [
        str(tools / "critest"), "--runtime-endpoint", ENDPOINT, "--image-endpoint", ENDPOINT,
        f"--ginkgo.skip={'|'.join(re.escape(name) for name in SKIPPED)}",
        f"--ginkgo.json-report={report}", "--ginkgo.no-color",
        "--ginkgo.timeout=35m",
    ]  # fmt: skip
    if focus := os.environ.get("NSPOD_CRITEST_FOCUS"):  # a part of the suite, while working on it
        command.append(f"--ginkgo.focus={focus}")
    log = out / "critest.log"  # written as it runs: `tail -f` it to follow the specs
    print(f"critest: its output in {log}", file=sys.stderr)
    started = time.monotonic()
    with open(log, "w") as output:
        run = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, timeout=TIMEOUT, cwd=tmp_path)
    wall = time.monotonic() - started
    with open(out / "nspod-cri.journal", "w") as journal:  # the service's side of a failed spec
        # (and a hostPID sandbox's containers, host units: stage1/fly)
        units = ["-u", "nspod-cri.service", "-u", "nspod-fly-*"]
        journalctl = ["journalctl", *units, "--no-pager", "-o", "short-precise"]
        subprocess.run(journalctl, stdout=journal, stderr=subprocess.STDOUT, timeout=120, check=False)
    text = log.read_text(errors="replace")
    assert report.exists(), f"critest wrote no report (exit {run.returncode}): {text[-3000:]}"
    results = spec_results(report)
    states = {state for _, state, _ in results}
    counts = {state: sum(1 for _, s, _ in results if s == state) for state in sorted(states)}
    summary = f"critest: {len(results)} specs in {wall:.0f} s: {counts}"
    skipped = [name for name, state, _ in results if state == "skipped"]
    print(summary, areas(results), "skipped:", *skipped, sep="\n", file=sys.stderr)
    failed = [f"{name}: {why}" for name, state, why in results if state not in ("passed", "skipped")]
    assert not failed, summary + "\n" + "\n".join(failed)
    if not os.environ.get("NSPOD_CRITEST_FOCUS"):  # (a focus skips the rest)
        # critest's 5 benchmark specs are in the report too, skipped unless it runs with -benchmark
        others = [s for s in skipped if not any(n in s for n in SKIPPED) and " benchmark " not in s]
        assert not others, f"skipped beyond the one named: {others}"
    assert run.returncode == 0, text[-3000:]
