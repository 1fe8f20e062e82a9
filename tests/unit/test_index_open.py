"""Many processes opening a new store's index at once: each gets it (WAL is switched on by one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

OPEN = "import sys; from stage0.images.store.index import Index; Index(sys.argv[1]).close()"


def test_concurrent_opens_of_a_new_index(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"index{round_}.db"
        procs = [
            subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE, cwd=REPO)
            for _ in range(12)
        ]
        errors = [p.communicate()[1].decode() for p in procs]
        assert [p.returncode for p in procs] == [0] * 12, [e for e in errors if e]


def test_marking_images_used_writes_only_what_is_stale(tmp_path: Path) -> None:
    """A run marks its images used (image gc's clock, issue #23 item 8), but a mark younger than the
    resolution is not written again: repeated runs do not queue for the index's write lock."""
    from stage0.images.store.index import Index
    from stage0.images.store.rows import ImageRow

    index = Index(str(tmp_path / "index.db"))
    for image_id, used in (("sha512-old", 1000.0), ("sha512-new", 9990.0)):
        index.add_image(ImageRow(image_id, "n", {}, b"{}", "gzip", 1, 1, 1000.0, used, "s", None, True))
    before = index._db.total_changes
    index.touch("sha512-new", when=10000.0, resolution=60)
    assert index._db.total_changes == before  # nothing written
    index.touch("sha512-old", "sha512-new", "sha512-gone", when=10000.0, resolution=60)
    assert {r.id: r.last_used for r in index.images()} == {"sha512-old": 10000.0, "sha512-new": 9990.0}
    index.close()


def test_one_index_from_many_threads(tmp_path: Path) -> None:
    """A server's threads (and an OCI pull's layer threads) share one Index: each thread gets its own
    connection, so transactions never interleave on one connection and every write lands."""
    from concurrent.futures import ThreadPoolExecutor

    from stage0.images.store.index import Index
    from stage0.images.store.rows import ImageRow, LayerRow

    index = Index(str(tmp_path / "index.db"))

    def work(n: int) -> int:
        for i in range(20):
            index.add_layer(LayerRow(f"sha256:{n}-{i}", f"d{n}-{i}", 1, 1, 1.0))
            index.add_image(
                ImageRow(f"sha512-{n}-{i}", f"n{n}", {}, b"{}", "oci", 1, 1, 1.0, 1.0, "s", None, True),
                (f"sha256:{n}-{i}",),
            )
            assert index.layer(f"sha256:{n}-{i}") is not None
        return len(index.images())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))
    assert len(index.images()) == 160 and len(index.layer_ids()) == 160
    assert len([r for r in index.images() if r.latest]) == 8  # one latest per name, whatever the order
    index.close()
