"""The storage interface of a vault: sealed records, and apart from them the wrapped data keys.

Records (ciphertext and clear header) and wrapped keys are kept apart so that erasure can destroy
the keys and nothing else. A backend (the embedded SQLite + files, later an object store) makes a
record and its keys durable together before put returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

MAX_LIST_RECORDS = 10_000  # record ids one list() answers


@dataclass(frozen=True)
class RecordMeta:
    """What a record is listed by."""

    dataset: str
    window_start_s: int


@dataclass(frozen=True)
class KeyBlob:
    """One wrapped data key as stored: for record_id, sealed to recipient."""

    record_id: bytes
    recipient: bytes
    enc: bytes
    ct: bytes


@dataclass(frozen=True)
class PutItem:
    """One record to store with its wrapped keys."""

    record_id: bytes
    blob: bytes
    meta: RecordMeta
    keys: Sequence[KeyBlob]


class VaultStore(Protocol):
    """Where one owner's vault keeps its records and keys."""

    def put(self, record_id: bytes, blob: bytes, meta: RecordMeta, keys: Sequence[KeyBlob]) -> bool:
        """Store a record and its keys durably; False if that record was already stored (same bytes)."""
        ...

    def put_many(self, items: Sequence[PutItem]) -> int:
        """Store several records in one durable step; the number newly stored."""
        ...

    def get(self, record_id: bytes) -> bytes | None:
        """A record's blob, or None."""
        ...

    def get_key(self, record_id: bytes, recipient: bytes) -> KeyBlob | None:
        """A record's data key wrapped for recipient, or None (never existed or destroyed)."""
        ...

    def list(self, dataset: str, start_s: int, end_s: int, limit: int = MAX_LIST_RECORDS) -> list[bytes]:
        """Ids of the data set's records whose window starts in [start_s, end_s), oldest first."""
        ...

    def delete(self, record_id: bytes) -> bool:
        """Remove a record and its keys (retention); False if there was none."""
        ...

    def destroy_keys(self, dataset: str | None) -> int:
        """Destroy every wrapped key of the data set (None: of every data set), leaving no copy in
        the backend's files; the number destroyed."""
        ...

    def key_blobs(self) -> Iterator[KeyBlob]:
        """Every wrapped key the store holds (for audits and the erasure test)."""
        ...

    def close(self) -> None:
        """Release files and connections."""
        ...
