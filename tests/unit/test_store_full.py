"""A full disk is said as such, never as damage (issue #23 item 23): the index when SQLite cannot
write a page, an import whose blob cannot be written, and the shared message."""

from __future__ import annotations

import errno
import gzip
import io
import re
from pathlib import Path

import pytest

from stage0.errors import DiskFull, disk_full, space_on
from stage0.images.aci.importer import import_stream
from stage0.images.aci.tarstream import Limits
from stage0.images.store.index import Index
from stage0.images.store.rows import ImageRow
from tests.unit.hostile import archive, file

ROW = ImageRow(
    id="sha512-" + "a" * 128, name="example.com/a", labels={}, manifest=b"x" * 200_000, compression="gzip",
    size=1, tree_size=1, import_time=0.0, last_used=0.0, source="a.aci", signer=None, latest=False,
)  # fmt: skip


def test_a_full_index_says_so_and_keeps_nothing(tmp_path: Path) -> None:
    index = Index(str(tmp_path / "index.db"))
    pages = index._db.execute("PRAGMA page_count").fetchone()[0]
    index._db.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own SQLITE_FULL, as on a full disk
    with pytest.raises(DiskFull) as failed:
        index.add_image(ROW)
    assert re.fullmatch(rf"no space left on {tmp_path} \(\d+ bytes free\)", failed.value.message)
    assert "damaged" not in failed.value.diagnostics()
    assert index.images() == []  # rolled back
    index._db.execute(f"PRAGMA max_page_count={pages + 1000}")  # space freed
    index.add_image(ROW)
    assert [r.id for r in index.images()] == [ROW.id]


class Full(io.BytesIO):
    def write(self, data: object, /) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_blob_that_cannot_be_written_is_not_corrupt_data() -> None:
    aci = gzip.compress(archive(file("rootfs/a", b"a" * 100_000)), mtime=0)
    with pytest.raises(OSError) as failed:
        import_stream(io.BytesIO(aci), blob=Full(), rootfs=None, limits=Limits())
    assert failed.value.errno == errno.ENOSPC


def test_space_on_names_the_directory_and_what_is_free(tmp_path: Path) -> None:
    with pytest.raises(DiskFull) as failed, space_on(str(tmp_path)):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert failed.value.message == disk_full(str(tmp_path)).message
    assert re.fullmatch(rf"no space left on {tmp_path} \(\d+ bytes free\)", failed.value.message)
    with pytest.raises(OSError), space_on(str(tmp_path)):  # any other failure is what it is
        raise OSError(errno.EIO, "Input/output error")
