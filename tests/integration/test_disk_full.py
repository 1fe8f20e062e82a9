"""A full disk while preparing and running a pod (issue #23 item 23): the data dir is a small
tmpfs mounted in the test host (its own mount namespace). ``prepare`` and ``run`` say "no space
left on DIR (N bytes free)", leave no pod behind and keep the store whole; once space is freed
the same run works."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd
FULL = re.compile(r"^nspod: no space left on \S+ \((\d+) bytes free\)\n  hint: free space there", re.M)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0750", "tmpfs", str(data)], check=True)
    yield data
    subprocess.run(["umount", "--lazy", str(data)], check=False)


@pytest.mark.parametrize("moment", ["before", "pod-made"])
@pytest.mark.parametrize("verb", ["prepare", "run"])
def test_a_pod_on_a_full_disk(small: Path, bb: Path, verb: str, moment: str) -> None:  # noqa: F811
    """The disk full before the verb starts (the index cannot open), or filled the moment the
    pod's directory is made (its files cannot be written)."""
    nspod = Nspod(small)
    image_id = nspod("fetch", str(bb)).stdout.split()[-1]
    filler = small / "filler"
    argv = nspod.argv(verb, "example.com/bb", "--exec=/bin/true")
    if moment == "before":
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True, check=False)
    else:
        assert argv[1:3] == ["-m", "stage0"]
        argv[1:3] = ["-m", "tests.harness.at_moment", f"fill={filler}", moment]
    full = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert full.returncode == 254, (full.returncode, full.stdout, full.stderr)
    assert FULL.search(full.stderr), full.stderr
    assert "damaged" not in full.stderr and "internal error" not in full.stderr
    assert full.stdout == ""  # no UUID of a pod that is not there
    filler.unlink()  # space freed
    assert json.loads(nspod("list", "--format", "json").stdout) == []  # nothing half-made stays
    assert [p.name for p in (small / "pods").glob("*/*")] == []
    again = nspod(verb, "example.com/bb", "--exec=/bin/true")
    assert again.returncode == 0, again.stderr
    verified = nspod("image", "verify", image_id)
    assert verified.returncode == 0 and "content matches its ID" in verified.stdout
    for pod in json.loads(nspod("list", "--full", "--format", "json").stdout):
        nspod("rm", pod["uuid"])
