"""The store against a pod being prepared (issue #23 item 19's audit): ``image rm`` and ``image gc``
must not remove an image a prepare has fetched but its pod does not list yet. The prepare is
stopped (SIGSTOP) exactly when it writes the pod's first file, the removal runs, then it goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def stopped(process: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T":
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("verb", [("image", "rm"), ("image", "gc", "--grace-period=1s")])
def test_a_removal_waits_for_the_pod_being_prepared(
    tmp_path: Path,
    bb: Path,  # noqa: F811
    verb: tuple[str, ...],
) -> None:
    nspod = Nspod(tmp_path / "data")
    image_id = nspod("fetch", str(bb)).stdout.split()[-1]
    time.sleep(1.5)  # older than gc's grace
    argv = nspod.argv("prepare", "example.com/bb")
    argv[1:3] = ["-m", "tests.harness.at_moment", "stop", "pod-file-placed"]
    prepare = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stopped(prepare), prepare.communicate()
        removal = subprocess.Popen(
            nspod.argv(*verb, *([image_id] if verb[1] == "rm" else [])),
            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2)
        assert removal.poll() is None  # it waits for the prepare
    finally:
        prepare.send_signal(signal.SIGCONT)
    out, err = prepare.communicate(timeout=120)
    assert prepare.returncode == 0, err
    removed = removal.communicate(timeout=120)
    if verb[1] == "rm":
        assert removal.returncode == 254, removed
        assert "is used by a pod prepared meanwhile" in removed[1]
    else:
        assert removal.returncode == 0, removed
    assert nspod("image", "verify", image_id).returncode == 0  # still whole
    assert nspod("rm", out.split()[-1]).returncode == 0
