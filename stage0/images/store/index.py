"""The store's index: SQLite in WAL mode, one connection per thread, short transactions.

A long-running server (the CRI) calls the index from many threads, and an OCI pull's layer
threads write it too: each thread gets its own connection on first use, so SQLite's own locking
(WAL readers beside one writer, the busy timeout for writers) orders them as it orders processes.

A row is written only after the blob it describes is durable, so a row always has its blob; a
blob without a row (a crash between the two) is found and removed when the store opens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import urllib.parse

from stage0.errors import Error, ErrorKind, disk_full, free_bytes
from stage0.images.store.fresh import create_index
from stage0.images.store.rows import COLUMNS, ImageRow, LayerRow, RemoteRow, image_row

SCHEMA_VERSION = 2  # 2: OCI layers
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- sha512-<128 hex>
    name TEXT NOT NULL,
    labels TEXT NOT NULL,           -- JSON object
    manifest BLOB NOT NULL,         -- as stored in the image
    compression TEXT NOT NULL,
    size INTEGER NOT NULL,          -- bytes of the blob (the ACI as received)
    tree_size INTEGER NOT NULL,     -- bytes of extracted file data
    import_time REAL NOT NULL,
    last_used REAL NOT NULL,
    source TEXT NOT NULL,           -- path or URL it came from
    signer TEXT,                    -- fingerprint of the key that signed it, if verified
    latest INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS images_name ON images (name);
CREATE TABLE IF NOT EXISTS remotes (
    url TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    etag TEXT,
    max_age INTEGER NOT NULL DEFAULT 0,
    download_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (  -- OCI layers, each extracted once, shared between images
    diff_id TEXT PRIMARY KEY,       -- sha256:<hex> of the tar
    digest TEXT NOT NULL,           -- of the blob it came from
    size INTEGER NOT NULL,          -- bytes of that blob
    tree_size INTEGER NOT NULL,
    import_time REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL,
    position INTEGER NOT NULL,      -- 0 is the bottom layer
    diff_id TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers (diff_id);
"""


class StoreError(Error):
    kind = ErrorKind.INTERNAL
    hint = "the image store may be damaged; 'nspod image list' shows what it holds"


SQLITE_IOERR, SQLITE_FULL = 10, 13
LOW_SPACE = 1 << 20  # under this, an I/O error is taken for what it most likely is: a full disk


def _raise_if_full(error: sqlite3.Error, path: str) -> None:
    """A full disk, said as such. SQLite says SQLITE_FULL when a page cannot be written, but "disk
    I/O error" when its shared-memory file cannot grow: then the free space decides."""
    directory = os.path.dirname(path) or "."
    code, free = getattr(error, "sqlite_errorcode", 0) & 0xFF, free_bytes(directory)
    if code == SQLITE_FULL or (code == SQLITE_IOERR and free is not None and free < LOW_SPACE):
        raise disk_full(directory) from None


def _wal(db: sqlite3.Connection, timeout: float = 60.0) -> None:
    """The index in WAL mode (kept in the file: set once, by whoever creates it). Switching takes
    an exclusive lock, and SQLite's busy handler does not wait for that one: processes opening a
    new store at once retry here instead of failing with "database is locked"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _reader(path: str) -> sqlite3.Connection:
    """The index read-only, for group nspod (stage0/host/access.py). SQLite reads a WAL database
    read-only while its -shm file exists (a writer has it open); else, no writer having it open,
    the main file is the whole index and is read as immutable."""
    if path == ":memory:":  # no store yet: an empty index
        db = sqlite3.connect(path, isolation_level=None)
        for statement in filter(str.strip, SCHEMA.split(";")):
            db.execute(statement)
        return db
    for mode in ("mode=ro", "immutable=1"):
        try:
            db = sqlite3.connect(f"file:{urllib.parse.quote(path)}?{mode}", uri=True, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError as error:
            failed = error
    raise StoreError(f"cannot read the store index {path}: {failed}")


class Index:
    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self._path, self._read_only = path, read_only
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if not read_only and path != ":memory:" and not os.path.exists(path):
            # made whole and linked into place; when that fails, SQLite makes it below and says why
            with contextlib.suppress(OSError, sqlite3.Error):
                create_index(path, SCHEMA, SCHEMA_VERSION)
        db = self._db  # the first connection: the schema made or checked, here and now
        if read_only:
            return
        try:
            _wal(db)  # kept in the file: once is enough
            with self.transaction():
                for statement in filter(str.strip, SCHEMA.split(";")):
                    db.execute(statement)
                row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) < SCHEMA_VERSION:  # the tables above were added: note it
                    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise StoreError(
                        f"the store index is schema version {row[0]}, newer than this nspod knows "
                        f"({SCHEMA_VERSION})",
                        hint="use the nspod that wrote it, or a newer one",
                    )
        except sqlite3.DatabaseError as error:
            _raise_if_full(error, path)
            raise StoreError(f"cannot open the store index {path}: {error}") from None

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's connection, opened on its first use."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        return db

    def _connect(self) -> sqlite3.Connection:
        if self._read_only:
            return _reader(self._path)
        try:
            # closed by close(), from whichever thread: not bound to the thread that opened it
            db = sqlite3.connect(self._path, timeout=60, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=FULL")  # a setting of the connection, not of the file
            return db
        except sqlite3.DatabaseError as error:
            _raise_if_full(error, self._path)
            raise StoreError(f"cannot open the store index {self._path}: {error}") from None

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
        self._local = threading.local()

    def transaction(self) -> sqlite3.Connection:
        """``with index.transaction():`` — BEGIN IMMEDIATE … COMMIT (or ROLLBACK on error)."""
        return _Transaction(self._db, self._path)  # type: ignore[return-value]

    # -- images -------------------------------------------------------------------------------------

    def add_image(
        self, row: ImageRow, layers: tuple[str, ...] = (), remote: RemoteRow | None = None
    ) -> None:
        """An image's row; ``layers``: an OCI image's diff IDs, bottom first (rows of ``layers``);
        ``remote``: the reference it was pulled by, in the same commit (one disk wait, not two)."""
        with self.transaction():
            for position, diff_id in enumerate(layers):
                self._db.execute(
                    "INSERT OR REPLACE INTO image_layers VALUES (?, ?, ?)", (row.id, position, diff_id)
                )
            if row.latest:
                self._db.execute("UPDATE images SET latest=0 WHERE name=?", (row.name,))
            self._db.execute(
                f"INSERT OR IGNORE INTO images ({COLUMNS}) VALUES ({', '.join('?' * 12)})",
                (
                    row.id,
                    row.name,
                    json.dumps(dict(row.labels), sort_keys=True),
                    row.manifest,
                    row.compression,
                    row.size,
                    row.tree_size,
                    row.import_time,
                    row.last_used,
                    row.source,
                    row.signer,
                    int(row.latest),
                ),
            )
            if remote is not None:
                self._set_remote(remote)

    def image(self, image_id: str) -> ImageRow | None:
        row = self._db.execute(f"SELECT {COLUMNS} FROM images WHERE id=?", (image_id,)).fetchone()
        return None if row is None else image_row(row)

    def images(self) -> list[ImageRow]:
        return [image_row(r) for r in self._db.execute(f"SELECT {COLUMNS} FROM images ORDER BY import_time")]

    def by_prefix(self, prefix: str) -> list[ImageRow]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = f"SELECT {COLUMNS} FROM images WHERE id LIKE ? ESCAPE '\\' ORDER BY id"
        return [image_row(r) for r in self._db.execute(query, (escaped + "%",))]

    def by_name(self, name: str) -> list[ImageRow]:
        query = f"SELECT {COLUMNS} FROM images WHERE name=? ORDER BY latest DESC, import_time DESC"
        return [image_row(r) for r in self._db.execute(query, (name,))]

    def by_source(self, source: str) -> list[ImageRow]:
        query = f"SELECT {COLUMNS} FROM images WHERE source=? ORDER BY latest DESC, import_time DESC"
        return [image_row(r) for r in self._db.execute(query, (source,))]

    def touch(self, *image_ids: str, when: float | None = None, resolution: float = 0.0) -> None:
        """Set the images' last-used time (image gc's clock). Rows used less than ``resolution``
        seconds before are left as they are; when that is all of them, nothing is written."""
        now = when or time.time()
        marks = ", ".join("?" * len(image_ids))
        query = f"SELECT id FROM images WHERE id IN ({marks}) AND last_used <= ?"
        stale = [r[0] for r in self._db.execute(query, (*image_ids, now - resolution))]
        if not stale:
            return
        with self.transaction():
            self._db.execute(
                f"UPDATE images SET last_used=? WHERE id IN ({', '.join('?' * len(stale))})", (now, *stale)
            )

    def set_signer(self, image_id: str, signer: str | None, *, latest: bool) -> None:
        with self.transaction():
            row = self._db.execute("SELECT name FROM images WHERE id=?", (image_id,)).fetchone()
            if latest and row:
                self._db.execute("UPDATE images SET latest=0 WHERE name=?", (row[0],))
            self._db.execute(
                "UPDATE images SET signer=coalesce(?, signer), latest=max(latest, ?) WHERE id=?",
                (signer, int(latest), image_id),
            )

    def remove_image(self, image_id: str) -> list[str]:
        """Remove an image's rows; the diff IDs of the layers no image uses any more (their rows
        are gone too: the caller removes their directories)."""
        with self.transaction():
            own = {
                r[0]
                for r in self._db.execute("SELECT diff_id FROM image_layers WHERE image_id=?", (image_id,))
            }
            self._db.execute("DELETE FROM images WHERE id=?", (image_id,))
            self._db.execute("DELETE FROM remotes WHERE image_id=?", (image_id,))
            self._db.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
            # only its own: a layer just stored for an image being pulled is listed by none yet
            used = {r[0] for r in self._db.execute("SELECT DISTINCT diff_id FROM image_layers")}
            unused = sorted(own - used)
            self._db.executemany("DELETE FROM layers WHERE diff_id=?", [(d,) for d in unused])
            return unused

    # -- OCI layers ----------------------------------------------------------------------------------

    def add_layer(self, layer: LayerRow) -> None:
        with self.transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO layers VALUES (?, ?, ?, ?, ?)",
                (layer.diff_id, layer.digest, layer.size, layer.tree_size, layer.import_time),
            )

    def layer(self, diff_id: str) -> LayerRow | None:
        row = self._db.execute(
            "SELECT diff_id, digest, size, tree_size, import_time FROM layers WHERE diff_id=?", (diff_id,)
        ).fetchone()
        return None if row is None else LayerRow(*row)

    def image_layers(self, image_id: str) -> list[LayerRow]:
        """An OCI image's layers, bottom first (none for an ACI)."""
        query = (
            "SELECT l.diff_id, l.digest, l.size, l.tree_size, l.import_time FROM image_layers i"
            " JOIN layers l ON l.diff_id = i.diff_id WHERE i.image_id=? ORDER BY i.position"
        )
        return [LayerRow(*r) for r in self._db.execute(query, (image_id,))]

    def layer_sharing(self) -> dict[str, tuple[int, int]]:
        """Each OCI image's bytes in layers other images list too, and in layers only it lists."""
        query = (
            "SELECT i.image_id, l.size + l.tree_size,"
            " (SELECT count(DISTINCT o.image_id) FROM image_layers o WHERE o.diff_id = i.diff_id)"
            " FROM image_layers i JOIN layers l ON l.diff_id = i.diff_id"
        )
        sizes: dict[str, tuple[int, int]] = {}
        for image_id, size, users in self._db.execute(query):
            shared, own = sizes.get(image_id, (0, 0))
            sizes[image_id] = (shared + size, own) if users > 1 else (shared, own + size)
        return sizes

    def orphan_layers(self, before: float) -> list[str]:
        query = (
            "SELECT diff_id FROM layers"
            " WHERE import_time < ? AND diff_id NOT IN (SELECT diff_id FROM image_layers)"
        )
        return [r[0] for r in self._db.execute(query, (before,))]

    def remove_orphan_layer(self, diff_id: str) -> bool:
        """Remove a layer's row if still no image lists it; whether it did."""
        with self.transaction():
            if self._db.execute("SELECT 1 FROM image_layers WHERE diff_id=?", (diff_id,)).fetchone():
                return False
            return self._db.execute("DELETE FROM layers WHERE diff_id=?", (diff_id,)).rowcount > 0

    def layer_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT diff_id FROM layers")}

    def ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM images")}

    # -- remote cache ------------------------------------------------------------------------------

    def remote(self, url: str) -> RemoteRow | None:
        row = self._db.execute(
            "SELECT url, image_id, etag, max_age, download_time FROM remotes WHERE url=?", (url,)
        ).fetchone()
        return None if row is None else RemoteRow(*row)

    def remotes(self) -> list[RemoteRow]:
        """Every reference pulled, and the image it last gave (the CRI's tags and digests)."""
        query = "SELECT url, image_id, etag, max_age, download_time FROM remotes ORDER BY url"
        return [RemoteRow(*row) for row in self._db.execute(query)]

    def set_remote(self, row: RemoteRow) -> None:
        with self.transaction():
            self._set_remote(row)

    def _set_remote(self, row: RemoteRow) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO remotes VALUES (?, ?, ?, ?, ?)",
            (row.url, row.image_id, row.etag, row.max_age, row.download_time),
        )


class _Transaction:
    def __init__(self, db: sqlite3.Connection, path: str) -> None:
        self._db, self._path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            _raise_if_full(error, self._path)
            raise
        return self._db

    def __exit__(self, kind: object, failed: BaseException | None, _: object) -> None:
        try:
            if kind is None:
                self._db.execute("COMMIT")
            elif self._db.in_transaction:  # SQLite itself rolls back on some errors (SQLITE_FULL)
                self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")  # the commit failed: nothing of it stays
            _raise_if_full(error, self._path)
            raise
        if isinstance(failed, sqlite3.OperationalError):  # the write itself failed: rolled back
            _raise_if_full(failed, self._path)
