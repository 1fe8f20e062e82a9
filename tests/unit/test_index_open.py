"""Many processes opening a new store's index at once: each gets it (WAL is switched on by one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

OPEN = "import sys; from stage0.store.index import Index; Index(sys.argv[1]).close()"


def test_concurrent_opens_of_a_new_index(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"index{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, cwd=REPO)
            for _ in range(12)
        ]
        errors = [p.communicate()[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 12, [e for e in errors if e]
