"""A run of an image already in the store loads no HTTP, discovery or signature code (#14: the cold
path imports only what it needs). Seen through `python -X importtime` on `nspod prepare NAME`, the
same path as `run` up to stage1."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.test_pods import Nspod, bb  # noqa: F401 (a fixture)

pytestmark = pytest.mark.systemd  # a test host: no network, whatever the code might try
FETCHING = ("http.client", "ssl", "stage0.images.fetch.http", "stage0.images.fetch.discovery",
            "stage0.images.fetch.auth", "stage0.images.trust.verify", "pysequoia")  # fmt: skip


@pytest.mark.parametrize("by", ["name", "id"])
def test_a_run_from_the_store_imports_no_fetching(tmp_path: Path, bb: Path, by: str) -> None:  # noqa: F811
    nspod = Nspod(tmp_path / "data")
    image_id = nspod("fetch", str(bb)).stdout.split()[-1]
    argv = nspod.argv("prepare", "example.com/bb" if by == "name" else image_id)
    argv[1:1] = ["-X", "importtime"]
    argv.remove("--insecure-options=image")  # nothing to verify: the image is stored
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "stage0.pods.prepare" in imported
    assert sorted(imported & set(FETCHING)) == []
    nspod("rm", done.stdout.split()[-1])
