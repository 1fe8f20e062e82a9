"""A new store index made whole before it has its name (stage0/images/store/index.py opens it)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading


def create_index(path: str, schema: str, version: int) -> None:
    """A new index, made whole beside ``path`` and linked into place: written without a sync
    (a crash leaves a stray file, never a half-made index), then one fsync of the file and one
    of the directory, where SQLite's own switch to WAL and first commit synced seven times — each
    a disk wait in every command that opens a new store (bench/pull's empty store per round).
    Another process that made it first wins: ours is dropped."""
    _sweep(path)
    making = f"{path}.{os.getpid()}-{threading.get_ident()}.new"
    try:
        db = sqlite3.connect(making, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN")
            for statement in filter(str.strip, schema.split(";")):
                db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(version),))
            db.execute("COMMIT")
        finally:
            db.close()  # the last connection: the WAL is folded into the file and removed
        fd = os.open(making, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(making, path)
        except FileExistsError:
            return
        fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)  # the new name survives a crash before the first row is written
        finally:
            os.close(fd)
    finally:
        for leftover in (making, f"{making}-wal", f"{making}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _sweep(path: str) -> None:
    """What a maker killed mid-way (kill -9) left beside ``path``: its process is gone."""
    directory, prefix = os.path.dirname(path) or ".", os.path.basename(path) + "."
    for name in os.listdir(directory):
        pid, dash, rest = name[len(prefix) :].partition("-")
        if not name.startswith(prefix) or not dash or not pid.isdigit() or ".new" not in rest:
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
        except PermissionError:
            pass  # alive, another user's
