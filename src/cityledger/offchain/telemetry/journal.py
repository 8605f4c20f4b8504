"""The gateway's journal: each accepted batch made durable with one append and one fsync, before the
broker gets its acknowledgements; the owners' vaults and the gateway's state are filed behind it.

    journal = Journal(folder, applied=state.applied_batch())
    for entry in journal.replay(): ...          # batches journalled, not yet filed (after a crash)
    number = journal.append(interval, records)  # durable when it returns
    journal.release(applied)                    # drop the segment files every batch of which is filed

Files: journal/<first batch number, 16 digits>.jnl, a new one past JOURNAL_SEGMENT_BYTES. An entry:
  length (4 bytes, big-endian) of the body, CRC-32 of the body (4 bytes), then the body: batch number
  (8 bytes), interval (8 bytes), record count (4 bytes), then per record: record id (32 bytes),
  owner (2-byte length, UTF-8), the stored record's canonical bytes (4-byte length), wraps count
  (1 byte), per wrap recipient, enc (32 bytes each) and ct (WRAP_CT_LEN bytes), the owner's first.
Wrapped data keys are in the journal until their batch is filed: once every batch is filed the file
appended to is cut to nothing, and older files are deleted as soon as all their batches are filed,
so an erasure (which destroys the keys in the vault) leaves no copy here beyond the batches still
being filed (docs/PRIVACY.md).
A crash mid-append leaves a torn last entry: it was never acknowledged (the fsync had not returned),
so opening the journal cuts it off and the broker delivers those messages again.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ...core.encoding import decoder
from ...core.files import fsync_folder
from .format import WRAP_CT_LEN, X25519_KEY_LEN, StoredRecord, WrappedKey
from .verify import VerifiedRecord

# A journal file takes entries until it is this large (~14,000 records): small, so that the wrapped
# keys of filed records leave the journal soon even when the filing never quite catches up.
JOURNAL_SEGMENT_BYTES = 8 * 1024 * 1024
FILE_MODE = 0o600
_SUFFIX = ".jnl"
_ENTRY = struct.Struct(">II")  # body length, CRC-32
_BATCH = struct.Struct(">QQI")  # batch number, interval, record count
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_WRAP_LEN = 2 * X25519_KEY_LEN + WRAP_CT_LEN
_STORED = decoder(StoredRecord)


class JournalError(RuntimeError):
    """The journal holds something it cannot have written: the message says where."""


@dataclass(frozen=True)
class JournalEntry:
    """One journalled batch: its number, the interval the gateway put it in, its records."""

    batch: int
    interval: int
    records: list[VerifiedRecord]


def encode_entry(batch: int, interval: int, records: Sequence[VerifiedRecord]) -> bytes:
    """One entry's bytes, framed (length and CRC) as appended."""
    parts = [_BATCH.pack(batch, interval, len(records))]
    for record in records:
        owner = record.owner.encode()
        wraps = (record.owner_wrap, *record.consumer_wraps)
        parts += [record.record_id, _U16.pack(len(owner)), owner, _U32.pack(len(record.blob)), record.blob,
                  bytes((len(wraps),))]
        parts += [wrap.recipient + wrap.enc + wrap.ct for wrap in wraps]
    body = b"".join(parts)
    return _ENTRY.pack(len(body), zlib.crc32(body)) + body


def decode_body(body: bytes) -> JournalEntry:
    """The entry a CRC-checked body holds (the record ids as journalled: the gateway computed them)."""
    batch, interval, count = _BATCH.unpack_from(body)
    at, records = _BATCH.size, []
    for _ in range(count):
        record_id = body[at:at + 32]
        (owner_len,) = _U16.unpack_from(body, at + 32)
        at += 34
        owner = body[at:at + owner_len].decode()
        (blob_len,) = _U32.unpack_from(body, at + owner_len)
        at += owner_len + 4
        blob = body[at:at + blob_len]
        at += blob_len
        wraps = []
        for _ in range(body[at]):
            raw = body[at + 1:at + 1 + _WRAP_LEN]
            wraps.append(WrappedKey(raw[:X25519_KEY_LEN], raw[X25519_KEY_LEN:2 * X25519_KEY_LEN],
                                    raw[2 * X25519_KEY_LEN:]))
            at += _WRAP_LEN
        at += 1
        records.append(VerifiedRecord(record_id, owner, _STORED.decode(blob), blob, wraps[0], wraps[1:], 0))
    if at != len(body):
        raise JournalError(f"batch {batch}: {len(body) - at} bytes past its {count} records")
    return JournalEntry(batch, interval, records)


def _read_entries(path: Path) -> tuple[list[tuple[int, bytes]], int]:
    """(offset, body) of each whole entry of a file, and where the whole entries end."""
    data = path.read_bytes()
    at, entries = 0, []
    while at + _ENTRY.size <= len(data):
        size, crc = _ENTRY.unpack_from(data, at)
        body = data[at + _ENTRY.size:at + _ENTRY.size + size]
        if len(body) != size or zlib.crc32(body) != crc:
            break
        entries.append((at, body))
        at += _ENTRY.size + size
    return entries, at


def read_last_batch(folder: Path | str) -> int:
    """The number of the last whole batch journalled under folder (0 if none); reads, never writes,
    so it may look at a journal a running gateway appends to."""
    for _, path in reversed(_segments(Path(folder))):
        entries = _read_entries(path)[0]
        if entries:
            return _BATCH.unpack_from(entries[-1][1])[0]
    return 0


def _segments(folder: Path) -> list[tuple[int, Path]]:
    return sorted((int(path.stem), path) for path in folder.glob("*" + _SUFFIX) if path.stem.isdigit())


class Journal:
    """Append-only batches under `folder`; one writer (the gateway's storing thread) at a time."""

    def __init__(self, folder: Path | str, applied: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.applied = applied
        self._lock = threading.Lock()  # append (storing thread) against release (filing thread)
        segments = self._segments()
        self._next = applied + 1
        self._fd = -1
        if segments:
            first, path = segments[-1]
            entries, end = _read_entries(path)
            if end != path.stat().st_size:  # a torn last entry, never acknowledged: cut it off
                with open(path, "r+b") as file:
                    file.truncate(end)
                    os.fsync(file.fileno())
            last = _BATCH.unpack_from(entries[-1][1])[0] if entries else first - 1
            self._next = max(self._next, last + 1)
            self._open(path)

    def _segments(self) -> list[tuple[int, Path]]:
        return _segments(self.folder)

    def _open(self, path: Path) -> None:
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
        self._size = os.fstat(self._fd).st_size
        if created:
            fsync_folder(self.folder)

    def replay(self) -> Iterator[JournalEntry]:
        """The journalled batches after the last one filed (`applied`), oldest first."""
        for _, path in self._segments():
            for _, body in _read_entries(path)[0]:
                if _BATCH.unpack_from(body)[0] > self.applied:
                    yield decode_body(body)

    def append(self, interval: int, records: Sequence[VerifiedRecord]) -> int:
        """Append a batch and fsync it: durable when this returns. The batch's number."""
        with self._lock:
            if self._fd < 0 or self._size >= JOURNAL_SEGMENT_BYTES:
                if self._fd >= 0:
                    os.close(self._fd)
                self._open(self.folder / f"{self._next:016d}{_SUFFIX}")
            number = self._next
            data = memoryview(encode_entry(number, interval, records))
            self._size += len(data)
            while data:
                data = data[os.write(self._fd, data):]
            os.fsync(self._fd)  # the one fsync a batch costs before its acknowledgements
            self._next = number + 1
            return number

    def release(self, applied: int) -> int:
        """Remember that every batch up to `applied` is filed; delete the segment files holding only
        such batches, and empty the one appended to once all of it is filed. The number of files
        deleted."""
        with self._lock:
            self.applied = max(self.applied, applied)
            if self._fd >= 0 and self._size and self.applied >= self._next - 1:
                os.ftruncate(self._fd, 0)  # O_APPEND: the next entry goes at the start
                os.fsync(self._fd)
                self._size = 0
            segments = self._segments()
        deleted = 0
        for (_, path), (next_first, _) in zip(segments, segments[1:]):
            if next_first - 1 > self.applied:
                break
            path.unlink()
            deleted += 1
        if deleted:
            fsync_folder(self.folder)
        return deleted

    def close(self) -> None:
        """Close the file appended to."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
