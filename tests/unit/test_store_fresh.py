"""stage0/images/store/fresh.py: a new index appears whole (schema, WAL mode) or not at all, the
first of racing makers wins, and nothing is left beside it; a pulled image's row and its remote
row in one commit (Index.add_image)."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from stage0.images.store.fresh import create_index
from stage0.images.store.index import SCHEMA, SCHEMA_VERSION, Index
from stage0.images.store.rows import ImageRow, RemoteRow


def test_a_new_index_is_whole_and_in_wal_mode(tmp_path: Path) -> None:
    path = str(tmp_path / "index.db")
    create_index(path, SCHEMA, SCHEMA_VERSION)
    assert sorted(os.listdir(tmp_path)) == ["index.db"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()


def test_racing_makers_leave_one_index_and_no_strays(tmp_path: Path) -> None:
    path = str(tmp_path / "index.db")
    makers = [threading.Thread(target=create_index, args=(path, SCHEMA, SCHEMA_VERSION)) for _ in range(4)]
    for maker in makers:
        maker.start()
    for maker in makers:
        maker.join()
    assert sorted(os.listdir(tmp_path)) == ["index.db"]


def test_an_existing_index_is_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "index.db")
    index = Index(path)
    with index.transaction() as db:
        db.execute("INSERT INTO meta VALUES ('mark', 'kept')")
    index.close()
    create_index(path, SCHEMA, SCHEMA_VERSION)  # loses the race to the index already there
    reopened = Index(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='mark'").fetchone() == ("kept",)
    db.close()
    reopened.close()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".new")]


def test_what_a_killed_maker_left_is_swept(tmp_path: Path) -> None:
    gone = 2**22 + 12345  # above pid_max's default: no such process
    for name in (f"index.db.{gone}-1.new", f"index.db.{gone}-1.new-wal", f"index.db.{os.getpid()}-9.new"):
        (tmp_path / name).write_bytes(b"half")
    create_index(str(tmp_path / "index.db"), SCHEMA, SCHEMA_VERSION)
    assert sorted(os.listdir(tmp_path)) == ["index.db", f"index.db.{os.getpid()}-9.new"]  # alive: kept


def test_an_image_and_its_remote_row_in_one_commit(tmp_path: Path) -> None:
    index = Index(str(tmp_path / "index.db"))
    row = ImageRow("sha512-1", "n", {}, b"{}", "oci", 1, 1, 1.0, 1.0, "s", None, True)
    index.add_image(row, remote=RemoteRow("docker://r/n:1#linux/amd64", "sha512-1", "sha256:d", 0, 2.0))
    remote = index.remote("docker://r/n:1#linux/amd64")
    assert index.image("sha512-1") is not None and remote is not None and remote.etag == "sha256:d"
    index.close()
