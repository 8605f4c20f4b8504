"""The embedded vault store: ciphertext in files, index and wrapped keys in SQLite, under one folder.

Durability: a record's file is written, fsynced and renamed into place (and its folder fsynced)
before the SQLite transaction that indexes it and stores its keys commits with synchronous=FULL, so
put returns only once both are on disk. A crash in between leaves a file nothing points to, with no
key to open it: it is never listed, and the next put of that record writes it again.

Erasure: keys live only in SQLite. secure_delete overwrites deleted keys in the database pages,
and a TRUNCATE checkpoint empties the write-ahead log that still held them, so no file under the
folder keeps a destroyed key.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Sequence

from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta

RECORD_ID_LEN = 32
FOLDER_MODE = 0o700
FILE_MODE = 0o600
BUSY_TIMEOUT_MS = 5_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (record_id BLOB PRIMARY KEY, dataset TEXT NOT NULL,"
    " window_start_s INTEGER NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS records_by_window ON records (dataset, window_start_s, record_id)",
    "CREATE TABLE IF NOT EXISTS keys (record_id BLOB NOT NULL, recipient BLOB NOT NULL, dataset TEXT NOT NULL,"
    " enc BLOB NOT NULL, ct BLOB NOT NULL, PRIMARY KEY (record_id, recipient)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS keys_by_dataset ON keys (dataset)",
)


class SqliteVaultStore:
    """One owner's records under `folder`: vault.sqlite and records/<2 hex>/<64 hex>."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        os.chmod(self.folder, FOLDER_MODE)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "vault.sqlite", isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA secure_delete = ON")
        for statement in _SCHEMA:
            self._db.execute(statement)
        os.chmod(self.folder / "vault.sqlite", FILE_MODE)

    def _path(self, record_id: bytes) -> Path:
        if not isinstance(record_id, bytes) or len(record_id) != RECORD_ID_LEN:
            raise ValueError(f"record_id: expected {RECORD_ID_LEN} bytes")
        return self.folder / "records" / record_id[:1].hex() / f"{record_id.hex()}.rec"

    def put(self, record_id: bytes, blob: bytes, meta: RecordMeta, keys: Sequence[KeyBlob]) -> bool:
        """Store a record and its keys durably; False if that record was already stored."""
        return self.put_many([PutItem(record_id, blob, meta, keys)]) == 1

    def put_many(self, items: Sequence[PutItem]) -> int:
        """Store several records in one durable step; the number newly stored."""
        for item in items:
            self._path(item.record_id)
            if any(key.record_id != item.record_id for key in item.keys):
                raise ValueError("keys: expected every key to name its item's record_id")
        with self._lock:
            known = self._known([item.record_id for item in items])
            fresh = list({item.record_id: item for item in items if item.record_id not in known}.values())
            _write_files_durably([(self._path(item.record_id), item.blob) for item in fresh])
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)",
                                     [(i.record_id, i.meta.dataset, i.meta.window_start_s, len(i.blob)) for i in fresh])
                self._db.executemany("INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
                                     [(k.record_id, k.recipient, i.meta.dataset, k.enc, k.ct) for i in fresh for k in i.keys])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(fresh)

    def _known(self, record_ids: list[bytes]) -> set[bytes]:
        known: set[bytes] = set()
        for record_id in record_ids:
            if self._db.execute("SELECT 1 FROM records WHERE record_id = ?", (record_id,)).fetchone():
                known.add(record_id)
        return known

    def get(self, record_id: bytes) -> bytes | None:
        """A record's blob, or None."""
        path = self._path(record_id)
        with self._lock:
            if not self._db.execute("SELECT 1 FROM records WHERE record_id = ?", (record_id,)).fetchone():
                return None
        try:
            return path.read_bytes()
        except FileNotFoundError:  # deleted since the lookup
            return None

    def get_key(self, record_id: bytes, recipient: bytes) -> KeyBlob | None:
        """A record's data key wrapped for recipient, or None."""
        with self._lock:
            row = self._db.execute("SELECT enc, ct FROM keys WHERE record_id = ? AND recipient = ?",
                                   (record_id, recipient)).fetchone()
        return None if row is None else KeyBlob(record_id, recipient, row[0], row[1])

    def list(self, dataset: str, start_s: int, end_s: int, limit: int = MAX_LIST_RECORDS) -> list[bytes]:
        """Ids of the data set's records whose window starts in [start_s, end_s), oldest first."""
        if not 1 <= limit <= MAX_LIST_RECORDS:
            raise ValueError(f"limit: expected 1 to {MAX_LIST_RECORDS}, got {limit}")
        with self._lock:
            rows = self._db.execute(
                "SELECT record_id FROM records WHERE dataset = ? AND window_start_s >= ? AND window_start_s < ?"
                " ORDER BY window_start_s, record_id LIMIT ?", (dataset, start_s, end_s, limit)).fetchall()
        return [row[0] for row in rows]

    def delete(self, record_id: bytes) -> bool:
        """Remove a record, its keys and its file; False if there was none."""
        path = self._path(record_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            gone = self._db.execute("DELETE FROM records WHERE record_id = ?", (record_id,)).rowcount
            self._db.execute("DELETE FROM keys WHERE record_id = ?", (record_id,))
            self._db.execute("COMMIT")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path.unlink(missing_ok=True)
        return gone > 0

    def destroy_keys(self, dataset: str | None) -> int:
        """Destroy the wrapped keys of a data set (None: all), leaving no copy in the folder's files."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            if dataset is None:
                destroyed = self._db.execute("DELETE FROM keys").rowcount
            else:
                destroyed = self._db.execute("DELETE FROM keys WHERE dataset = ?", (dataset,)).rowcount
            self._db.execute("COMMIT")
            # The WAL still holds the pages as they were before the delete: fold it into the
            # database (where secure_delete zeroed the cells) and cut it to nothing.
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise RuntimeError("vault: the write-ahead log could not be emptied (another reader holds it)")
        return destroyed

    def key_blobs(self) -> Iterator[KeyBlob]:
        """Every wrapped key the store holds."""
        with self._lock:
            rows = self._db.execute("SELECT record_id, recipient, enc, ct FROM keys ORDER BY record_id, recipient").fetchall()
        return iter([KeyBlob(*row) for row in rows])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _write_files_durably(files: list[tuple[Path, bytes]]) -> None:
    """Write each file under a temporary name, fsync it, rename it in place, then fsync each folder once."""
    folders: set[Path] = set()
    for path, data in files:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=FOLDER_MODE)
            folders.add(path.parent.parent)
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        folders.add(path.parent)
    for folder in sorted(folders):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
