"""The vault service's access log: per owner, a hash chain over every read by anyone but the owner, and
every erasure, each entry signed by the service and the chain's head anchored on the ledger in batches.

    entry n = (seq n, kind, reader, purpose, consent, data set, record ids, height, time, hash of entry n-1)
    hash n  = SHA-256(domain || canonical bytes of entry n);  the service signs hash n

The subject of an owner's log on the ledger is the owner's 'city…' account (consent's
AnchorAccessLog). Each anchor names the head it follows, so the anchored heads form one chain; an
owner who recomputes the chain from the entries the service shows finds any entry left out, changed
or reordered, because the hash at an anchored count no longer equals the anchored head
(`verify_log`).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ...core.encoding import Record, decoder, encode
from ...core.hashing import sha256
from ...core.keys import PrivateKey, PublicKey, verify_signature
from ...modules.consent import ZERO_HEAD

DOMAIN_ENTRY = b"cityledger/vault-access/1\x00"
DOMAIN_SIGN = b"cityledger/vault-access-sign/1\x00"
KIND_READ = "read"
KIND_ERASE = "erase"
KINDS = (KIND_ERASE, KIND_READ)
MAX_LOG_PAGE = 500  # entries one log page answers
BUSY_TIMEOUT_MS = 5_000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (owner TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,"
    " hash BLOB NOT NULL, signature BLOB NOT NULL, PRIMARY KEY (owner, seq)) WITHOUT ROWID",
    # Each owner's head, written with its entry: reading a head or the logs due never scans the entries.
    "CREATE TABLE IF NOT EXISTS heads (owner TEXT PRIMARY KEY, count INTEGER NOT NULL, hash BLOB NOT NULL)"
    " WITHOUT ROWID",
    # The count the ledger last took for each owner; owners whose log grew past it are due an anchor.
    "CREATE TABLE IF NOT EXISTS anchored (owner TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID",
)


class LogEntry(Record):
    """One logged access: a consumer's read (which records, under which consent) or an erasure."""

    seq: int  # 1 for the owner's first entry
    owner: str  # the owner's 'city…' account: the log's subject
    kind: str  # KIND_READ or KIND_ERASE
    reader: str  # the consumer's DID for a read; the owner's account for an erasure
    purpose: str  # the consent's purpose code; "" for an erasure
    consent_id: int  # 0 for an erasure
    data_set: str  # "" for the erasure of the owner's whole vault
    record_ids: list[bytes]  # the records released, in the order handed out; [] for an erasure
    keys_destroyed: int  # for an erasure; 0 for a read
    height: int  # the ledger's height the access was checked at
    time_s: int  # the service's clock, unix seconds
    previous: bytes  # the hash of entry seq - 1, ZERO_HEAD for the first


_ENTRY = decoder(LogEntry)


@dataclass(frozen=True)
class SignedEntry:
    """An entry with its hash and the service's signature over it."""

    entry: LogEntry
    hash: bytes
    signature: bytes


class LogBroken(ValueError):
    """An access log that does not verify: `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def compute_entry_hash(entry: LogEntry) -> bytes:
    """An entry's hash, chained through its `previous`."""
    return sha256(DOMAIN_ENTRY + encode(entry))


def compute_signing_bytes(service: str, entry_hash: bytes) -> bytes:
    """What the service signs for an entry: its DID and the entry's hash."""
    return DOMAIN_SIGN + encode([service, entry_hash])


class AccessLog:
    """The service's log of every owner, in one SQLite file; appends are durable before they return."""

    def __init__(self, path: Path | str, service: str, key: PrivateKey) -> None:
        self.service, self.key = service, key
        self._lock = threading.Lock()
        self._db = sqlite3.connect(Path(path), isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    def append(self, owner: str, kind: str, reader: str, purpose: str, consent_id: int, data_set: str,
               record_ids: Sequence[bytes], keys_destroyed: int, height: int, time_s: int) -> SignedEntry:
        """Log one access at the end of the owner's chain, signed; durable when this returns."""
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        with self._lock:
            count, previous = self._head(owner)
            entry = LogEntry(count + 1, owner, kind, reader, purpose, consent_id, data_set, list(record_ids),
                             keys_destroyed, height, time_s, previous)
            digest = compute_entry_hash(entry)
            signature = self.key.sign(compute_signing_bytes(self.service, digest))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                                 (owner, entry.seq, encode(entry), digest, signature))
                self._db.execute("INSERT OR REPLACE INTO heads VALUES (?, ?, ?)", (owner, entry.seq, digest))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return SignedEntry(entry, digest, signature)

    def entries(self, owner: str, after_seq: int = 0, limit: int = MAX_LOG_PAGE) -> list[SignedEntry]:
        """The owner's entries after `after_seq`, oldest first, at most `limit`."""
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise ValueError(f"limit: expected 1 to {MAX_LOG_PAGE}, got {limit}")
        with self._lock:
            rows = self._db.execute("SELECT body, hash, signature FROM entries WHERE owner = ? AND seq > ?"
                                    " ORDER BY seq LIMIT ?", (owner, after_seq, limit)).fetchall()
        return [SignedEntry(_ENTRY.decode(body), digest, signature) for body, digest, signature in rows]

    def head(self, owner: str) -> tuple[int, bytes]:
        """(count, head hash) of the owner's log; (0, ZERO_HEAD) before the first entry."""
        with self._lock:
            return self._head(owner)

    def _head(self, owner: str) -> tuple[int, bytes]:
        row = self._db.execute("SELECT count, hash FROM heads WHERE owner = ?", (owner,)).fetchone()
        return (0, ZERO_HEAD) if row is None else (row[0], row[1])

    def due(self, limit: int) -> list[str]:
        """Owners whose log grew past what the ledger last took, at most `limit`, in name order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT h.owner FROM heads h LEFT JOIN anchored a ON a.owner = h.owner"
                " WHERE h.count > COALESCE(a.count, 0) ORDER BY h.owner LIMIT ?", (limit,)).fetchall()
        return [row[0] for row in rows]

    def mark_anchored(self, counts: Iterable[tuple[str, int]]) -> None:
        """Record the counts the ledger took."""
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO anchored VALUES (?, ?)", list(counts))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def verify_log(entries: Sequence[SignedEntry], service: str, service_keys: Sequence[PublicKey],
               anchors: Sequence[tuple[int, bytes]], owner: str) -> bytes:
    """The head of an owner's whole log, checked entry by entry and against the anchored (count, head)
    pairs; raise LogBroken naming what does not hold."""
    previous, heads = ZERO_HEAD, {}
    for index, signed in enumerate(entries):
        entry = signed.entry
        if entry.seq != index + 1 or entry.owner != owner:
            raise LogBroken(f"entries[{index}].seq", f"expected entry {index + 1} of {owner}, got {entry.seq}")
        if entry.previous != previous:
            raise LogBroken(f"entries[{index}].previous", f"entry {entry.seq} does not follow entry {entry.seq - 1}")
        if compute_entry_hash(entry) != signed.hash:
            raise LogBroken(f"entries[{index}].hash", f"entry {entry.seq} does not hash to its recorded hash")
        signing = compute_signing_bytes(service, signed.hash)
        if not any(verify_signature(key, signing, signed.signature) for key in service_keys):
            raise LogBroken(f"entries[{index}].signature", f"entry {entry.seq} is not signed by {service}")
        previous = heads[entry.seq] = signed.hash
    for count, head in anchors:
        if count not in heads:
            raise LogBroken("anchors", f"the ledger anchors {count} entries, the log shows {len(entries)}")
        if heads[count] != head:
            raise LogBroken("anchors", f"the log's hash at entry {count} is not the head anchored on the ledger: "
                                       "an entry was left out, changed or reordered")
    return previous
