"""An owner's vault: stores what the gateway verified, opens records for the owner, hands a consumer
its own wrapped key only, and erases by destroying keys (crypto-shredding)."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ...core.encoding import decoder
from ...core.files import write_secret_file
from ..telemetry.crypto import VaultKey, open_record
from ..telemetry.format import (
    RecordHeader,
    Sample,
    StoredRecord,
    TelemetryError,
    WrappedKey,
    compute_record_id,
    is_valid_id,
)
from ..telemetry.verify import VerifiedRecord
from .sqlite_store import SqliteVaultStore
from .store import MAX_LIST_RECORDS, KeyBlob, PutItem, RecordMeta, VaultStore

_STORED = decoder(StoredRecord)
MAX_OPEN_VAULTS = 256  # SQLite connections (two file descriptors each) a host keeps open


class VaultError(LookupError):
    """A read or write a vault refuses: `code` says why, `field` names what."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field


class ConsentCheck(Protocol):
    """Whether a consumer may read a record now: the vault service asks the ledger's consents."""

    def is_released(self, consumer: bytes, header: RecordHeader) -> bool:
        """True if a consent valid now releases this record to this consumer key."""
        ...


@dataclass(frozen=True)
class Window:
    """A record opened: its clear header and its samples."""

    header: RecordHeader
    samples: list[Sample]


@dataclass(frozen=True)
class ConsumerEnvelope:
    """What a consumer gets: the sealed record and its own wrapped key, never another's."""

    record: StoredRecord
    wrap: WrappedKey


@dataclass(frozen=True)
class Erasure:
    """What an erasure destroyed: in which data set (None: all), how many wrapped keys."""

    owner: str
    dataset: str | None
    keys_destroyed: int


class Vault:
    """One owner's records behind a VaultStore."""

    def __init__(self, owner: str, store: VaultStore) -> None:
        if not is_valid_id(owner):
            raise ValueError("owner: expected 1 to 128 of A-Z a-z 0-9 . _ : -")
        self.owner = owner
        self.store = store

    def put_verified(self, records: Sequence[VerifiedRecord], ids_computed: bool = False) -> int:
        """Store records the gateway verified, durably; the number new. `ids_computed`: the caller
        computed each record id from its stored record itself (the gateway), so it is not again."""
        items = []
        for index, record in enumerate(records):
            if record.owner != self.owner:
                raise VaultError("wrong_vault", f"records[{index}].owner", f"expected {self.owner!r}, got {record.owner!r}")
            if not ids_computed and compute_record_id(record.stored) != record.record_id:
                raise VaultError("malformed", f"records[{index}].record_id", "expected the digest of the stored record")
            keys = [KeyBlob(record.record_id, wrap.recipient, wrap.enc, wrap.ct)
                    for wrap in (record.owner_wrap, *record.consumer_wraps)]
            meta = RecordMeta(record.stored.header.dataset, record.stored.header.window_start_s)
            items.append(PutItem(record.record_id, record.blob, meta, keys))
        return self.store.put_many(items)

    def get_record(self, record_id: bytes) -> StoredRecord:
        """The sealed record (clear header, ciphertext); VaultError if unknown."""
        blob = self.store.get(record_id)
        if blob is None:
            raise VaultError("not_found", "record_id", f"no record {record_id.hex()}")
        return _STORED.decode(blob)

    def list(self, dataset: str, start_s: int, end_s: int, limit: int = MAX_LIST_RECORDS) -> list[bytes]:
        """Ids of the data set's records whose window starts in [start_s, end_s)."""
        return self.store.list(dataset, start_s, end_s, limit)

    def read_owner(self, record_id: bytes, key: VaultKey) -> Window:
        """The owner's read: the record opened with the owner's vault key."""
        return Window(*self._open(record_id, key))

    def _open(self, record_id: bytes, key: VaultKey) -> tuple[RecordHeader, list[Sample]]:
        record = self.get_record(record_id)
        blob = self.store.get_key(record_id, key.public)
        if blob is None:
            raise VaultError("no_key", "record_id", f"no key of record {record_id.hex()} for this key (erased or never sealed)")
        try:
            return record.header, open_record(record, WrappedKey(blob.recipient, blob.enc, blob.ct), key)
        except TelemetryError as exc:
            raise VaultError(exc.code, exc.field, str(exc)) from None

    def read_for_consumer(self, record_id: bytes, consumer: bytes, consent: ConsentCheck) -> ConsumerEnvelope:
        """A consumer's read: refused unless consent releases the record now; then only its own key."""
        record = self.get_record(record_id)
        if not consent.is_released(consumer, record.header):
            raise VaultError("no_consent", "consumer", f"no consent releases data set {record.header.dataset!r} to this key")
        blob = self.store.get_key(record_id, consumer)
        if blob is None:
            # Released now, but the device sealed this record before the consent: nothing to hand out.
            raise VaultError("no_key", "consumer", "record not sealed for this consumer")
        return ConsumerEnvelope(record, WrappedKey(blob.recipient, blob.enc, blob.ct))

    def erase_dataset(self, dataset: str) -> Erasure:
        """Destroy every wrapped key (owner's and consumers') of a data set: its records stay, unreadable."""
        if not is_valid_id(dataset):
            raise ValueError("dataset: expected 1 to 128 of A-Z a-z 0-9 . _ : -")
        return Erasure(self.owner, dataset, self.store.destroy_keys(dataset))

    def erase_all(self, owner_key_file: Path | None = None) -> Erasure:
        """Destroy every wrapped key of the vault, and the owner's key file if it is kept here."""
        destroyed = self.store.destroy_keys(None)
        if owner_key_file is not None:
            destroy_key_file(owner_key_file)
        return Erasure(self.owner, None, destroyed)


class VaultHost:
    """Every owner's vault under one folder (the node's home), one SQLite store per owner; one
    process at a time may hold a vault folder. At most MAX_OPEN_VAULTS stay open, the least recently
    used is closed to make room. `open_store` opens another backend's store by the owner's digest
    name instead (backends.open_vaults: an S3 prefix)."""

    def __init__(self, root: Path | str, max_open: int = MAX_OPEN_VAULTS,
                 open_store: Callable[[str], VaultStore] | None = None) -> None:
        if not 1 <= max_open <= MAX_OPEN_VAULTS:
            raise ValueError(f"max_open: expected 1 to {MAX_OPEN_VAULTS}, got {max_open}")
        self.root = Path(root)
        self.max_open = max_open
        self.open_store = open_store or (lambda name: SqliteVaultStore(self.root / name))
        self._open: OrderedDict[str, Vault] = OrderedDict()

    def vault(self, owner: str) -> Vault:
        """The owner's vault, created on first use."""
        if owner in self._open:
            self._open.move_to_end(owner)
            return self._open[owner]
        if not is_valid_id(owner):
            raise ValueError("owner: expected 1 to 128 of A-Z a-z 0-9 . _ : -")
        if len(self._open) >= self.max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.store.close()
        # A digest, not the owner id, names the folder (or prefix): no path tricks, same length for all.
        self._open[owner] = Vault(owner, self.open_store(hashlib.sha256(owner.encode()).hexdigest()[:32]))
        return self._open[owner]

    def close(self) -> None:
        """Close every open vault."""
        for vault in self._open.values():
            vault.store.close()
        self._open.clear()


def save_key_file(path: Path | str, key: VaultKey) -> None:
    """Keep a vault key in an owner-only file."""
    write_secret_file(path, key.private_bytes())


def load_key_file(path: Path | str) -> VaultKey:
    """The vault key kept in path."""
    return VaultKey.from_bytes(Path(path).read_bytes())


def destroy_key_file(path: Path | str) -> None:
    """Overwrite a key file with zeros on disk, then remove it."""
    path = Path(path)
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
