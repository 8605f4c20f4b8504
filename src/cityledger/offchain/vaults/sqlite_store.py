"""The embedded vault store: ciphertext in segment files, index and wrapped keys in SQLite, under one folder.

Records are appended to the current segment file (segments/<number>.seg, a new one past
SEGMENT_BYTES), so a batch of records costs one fsync of the segment rather than one per record.
Durability: the batch is appended and fsynced before the SQLite transaction that indexes it and
stores its keys commits with synchronous=FULL, so put returns only once both are on disk. A crash
in between leaves bytes at a segment's tail that no row points to and no key opens: never listed,
and the next put appends after them.

Erasure: keys live only in SQLite. secure_delete overwrites deleted keys in the database pages,
and a TRUNCATE checkpoint empties the write-ahead log that still held them, so no file under the
folder keeps a destroyed key.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Sequence

from ...core.files import fsync_folder
from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta

RECORD_ID_LEN = 32
SEGMENT_BYTES = 64 * 1024 * 1024  # a segment file takes appends until it is this large
FOLDER_MODE = 0o700
FILE_MODE = 0o600
BUSY_TIMEOUT_MS = 5_000
KNOWN_CHUNK = 500  # record ids one duplicate check asks SQLite about (under its 999 parameters)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (record_id BLOB PRIMARY KEY, dataset TEXT NOT NULL,"
    " window_start_s INTEGER NOT NULL, segment INTEGER NOT NULL, offset INTEGER NOT NULL,"
    " size INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS records_by_window ON records (dataset, window_start_s, record_id)",
    # No index of keys by data set: an erasure finds a data set's keys through records_by_window (a
    # record and its keys are written and deleted in one transaction), and every stored key costs
    # one B-tree insertion fewer (vaults written before session 8 keep theirs, unused).
    "CREATE TABLE IF NOT EXISTS keys (record_id BLOB NOT NULL, recipient BLOB NOT NULL, dataset TEXT NOT NULL,"
    " enc BLOB NOT NULL, ct BLOB NOT NULL, PRIMARY KEY (record_id, recipient)) WITHOUT ROWID",
)


class SqliteVaultStore:
    """One owner's records under `folder`: vault.sqlite and segments/<8 digits>.seg."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        (self.folder / "segments").mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
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
        numbers = [int(path.stem) for path in (self.folder / "segments").glob("*.seg") if path.stem.isdigit()]
        self._segment = max(numbers, default=0)

    def segment_path(self, segment: int) -> Path:
        """The file of a segment."""
        return self.folder / "segments" / f"{segment:08d}.seg"

    def put(self, record_id: bytes, blob: bytes, meta: RecordMeta, keys: Sequence[KeyBlob]) -> bool:
        """Store a record and its keys durably; False if that record was already stored."""
        return self.put_many([PutItem(record_id, blob, meta, keys)]) == 1

    def put_many(self, items: Sequence[PutItem]) -> int:
        """Store several records in one durable step (one segment fsync, one commit); the number new."""
        for index, item in enumerate(items):
            if not isinstance(item.record_id, bytes) or len(item.record_id) != RECORD_ID_LEN:
                raise ValueError(f"items[{index}].record_id: expected {RECORD_ID_LEN} bytes")
            if any(key.record_id != item.record_id for key in item.keys):
                raise ValueError(f"items[{index}].keys: expected every key to name the item's record_id")
            if not isinstance(item.meta.window_start_s, int) or not -(2**63) <= item.meta.window_start_s < 2**63:
                raise ValueError(f"items[{index}].meta.window_start_s: expected a signed 64-bit integer")
        with self._lock:
            unique = list({item.record_id: item for item in items}.values())
            if not unique:
                return 0
            try:
                # Optimistic: a gateway's live batches are new (its sequence checks say so), and the
                # records' primary key refuses any that is not, so the duplicate check is skipped.
                return self._write(unique)
            except sqlite3.IntegrityError:
                pass  # some were stored already (a journal filed again after a crash): check first
            known = self._known([item.record_id for item in unique])
            fresh = [item for item in unique if item.record_id not in known]
            return self._write(fresh) if fresh else 0

    def _write(self, items: list[PutItem]) -> int:
        """Append the items' blobs, then index them and store their keys in one transaction; on any
        failure nothing is indexed and the bytes just appended are zeroed (no unindexed copy stays)."""
        segment, offsets = self._append([item.blob for item in items])
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
                                 [(i.record_id, i.meta.dataset, i.meta.window_start_s, segment, offset, len(i.blob))
                                  for i, offset in zip(items, offsets)])
            self._db.executemany("INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
                                 [(k.record_id, k.recipient, i.meta.dataset, k.enc, k.ct) for i in items for k in i.keys])
        except BaseException:
            self._db.execute("ROLLBACK")
            self._zero(segment, offsets[0], offsets[-1] + len(items[-1].blob) - offsets[0])
            raise
        self._db.execute("COMMIT")
        return len(items)

    def _zero(self, segment: int, offset: int, size: int) -> None:
        """Overwrite size bytes of a segment at offset with zeros, durably."""
        fd = os.open(self.segment_path(segment), os.O_WRONLY)
        try:
            os.pwrite(fd, bytes(size), offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _append(self, blobs: list[bytes]) -> tuple[int, list[int]]:
        """Append blobs to the current segment (a new one when it is full) and fsync; (segment, offsets)."""
        path = self.segment_path(self._segment)
        if self._segment == 0 or (path.exists() and path.stat().st_size >= SEGMENT_BYTES):
            self._segment += 1
            path = self.segment_path(self._segment)
        created = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        try:
            # Several gateway processes (shards) may file one owner's records: the lock keeps the
            # offsets read here those the bytes land at.
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Appends start at the true end: past any torn tail a crash left, which no row names.
            offset = os.fstat(fd).st_size
            offsets = []
            for blob in blobs:
                offsets.append(offset)
                offset += len(blob)
            data = memoryview(b"".join(blobs))
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_folder(path.parent)
        return self._segment, offsets

    def _known(self, record_ids: list[bytes]) -> set[bytes]:
        # One query per KNOWN_CHUNK ids, not one per record: the gateway files hundreds at once.
        known: set[bytes] = set()
        for first in range(0, len(record_ids), KNOWN_CHUNK):
            chunk = record_ids[first:first + KNOWN_CHUNK]
            rows = self._db.execute(f"SELECT record_id FROM records WHERE record_id IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            known.update(row[0] for row in rows)
        return known

    def get(self, record_id: bytes) -> bytes | None:
        """A record's blob, or None."""
        with self._lock:
            row = self._db.execute("SELECT segment, offset, size FROM records WHERE record_id = ?",
                                   (record_id,)).fetchone()
        if row is None:
            return None
        segment, offset, size = row
        with open(self.segment_path(segment), "rb") as file:
            file.seek(offset)
            blob = file.read(size)
        if len(blob) != size:
            raise RuntimeError(f"vault: segment {segment} is shorter than its index says (record {record_id.hex()})")
        return blob

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
        # SQLite integers are 64-bit, as window starts are: wider bounds mean "from the first" / "to the last".
        first, last = max(start_s, -(2**63)), min(end_s - 1, 2**63 - 1)
        if first > last:
            return []
        with self._lock:
            rows = self._db.execute(
                "SELECT record_id FROM records WHERE dataset = ? AND window_start_s >= ? AND window_start_s <= ?"
                " ORDER BY window_start_s, record_id LIMIT ?", (dataset, first, last, limit)).fetchall()
        return [row[0] for row in rows]

    def delete(self, record_id: bytes) -> bool:
        """Remove a record and its keys, and overwrite its bytes in the segment with zeros."""
        with self._lock:
            row = self._db.execute("SELECT segment, offset, size FROM records WHERE record_id = ?",
                                   (record_id,)).fetchone()
            if row is None:
                return False
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
            self._db.execute("DELETE FROM keys WHERE record_id = ?", (record_id,))
            self._db.execute("COMMIT")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._zero(*row)
        return True

    def destroy_keys(self, dataset: str | None) -> int:
        """Destroy the wrapped keys of a data set (None: all), leaving no copy in the folder's files."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            if dataset is None:
                destroyed = self._db.execute("DELETE FROM keys").rowcount
            else:
                destroyed = self._db.execute("DELETE FROM keys WHERE record_id IN (SELECT record_id FROM records"
                                             " WHERE dataset = ?)", (dataset,)).rowcount
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

