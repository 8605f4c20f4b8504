"""PassportStore: each tier of each passport encrypted at rest under its own key, versions that only grow.

Embedded default: SQLite (index, wrapped keys, access log) and one file per tier version, under one
directory (the node's home). Each (passport, tier) has a random 256-bit data key, kept only wrapped
by the store's master key (AES-256-GCM); each version is AES-256-GCM under the data key with the
passport id, tier and version as associated data, so a blob moved to another slot fails to open.
Serving a restricted tier needs `proof_ok`: the caller (the API) verifies the credential
presentation first; this store only enforces that the answer was yes and logs the read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from pathlib import Path
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...core.errors import InvariantBroken
from ...core.files import write_secret_file
from .accesslog import (GENESIS_HEX, MAX_LOG_GROUP, GroupCommitter, LogTicket, compute_entry_hash,
                        verify_chain)
from .reports import PendingBatch, VerifiedReport, compute_batch_root
from .anchoring import HeadLeaf, HeadProof, PendingAnchor, compute_head_proof, compute_heads_root
from .tiers import canonical_json, compute_tier_hash, export_tiers, is_withheld, merge, split
from .types import (MAX_DOCUMENT_BYTES, MAX_LOG_PAGE, MAX_READER_DID_CHARS, MAX_TIER_VERSION,
                    RESTRICTED_TIERS, TIERS, AccessDenied, AccessEntry, LogBroken, NotFound, PassportError,
                    PassportInvalid, SchemaIssue, Tier, TierVersion, VersionError, tier_rank)
from .validate import UUID_RE, check_document

KEY_BYTES = 32
NONCE_BYTES = 12
DB_FILE = "passports.sqlite"
BLOB_DIR = "blobs"
MAX_INT64 = 2**63 - 1
BUSY_TIMEOUT_MS = 30_000  # how long a write waits for the other connection's transaction (log vs the rest)
SQL_CHUNK = 500  # passports named in one `IN (...)` query (SQLite allows 32,766 parameters; smaller is no slower)

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS tier_keys (passport_id TEXT, tier TEXT, wrapped BLOB NOT NULL,
    PRIMARY KEY (passport_id, tier));
CREATE TABLE IF NOT EXISTS tier_versions (passport_id TEXT, tier TEXT, version INTEGER,
    hash TEXT NOT NULL, PRIMARY KEY (passport_id, tier, version));
CREATE TABLE IF NOT EXISTS operators (passport_id TEXT PRIMARY KEY, operator TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passport_log (passport_id TEXT, seq INTEGER, tier TEXT NOT NULL,
    version INTEGER NOT NULL, reader_did TEXT NOT NULL, height INTEGER NOT NULL, time_s INTEGER NOT NULL,
    prev TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (passport_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_heads (passport_id TEXT PRIMARY KEY, count INTEGER NOT NULL, head TEXT NOT NULL,
    anchored INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anchor_roots (seq INTEGER PRIMARY KEY, root BLOB NOT NULL, size INTEGER NOT NULL,
    height INTEGER);
CREATE TABLE IF NOT EXISTS anchor_leaves (seq INTEGER, idx INTEGER, passport_id TEXT NOT NULL,
    count INTEGER NOT NULL, head TEXT NOT NULL, PRIMARY KEY (seq, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS anchor_leaves_by_passport ON anchor_leaves (passport_id, seq);
CREATE TABLE IF NOT EXISTS soh_reports (passport_id TEXT, seq INTEGER, report_hash BLOB NOT NULL,
    sealed BLOB NOT NULL, batch INTEGER NOT NULL, PRIMARY KEY (passport_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_batches (seq INTEGER PRIMARY KEY, root BLOB NOT NULL, size INTEGER NOT NULL,
    height INTEGER);
CREATE TABLE IF NOT EXISTS soh_alerts (passport_id TEXT, seq INTEGER, batch INTEGER NOT NULL,
    PRIMARY KEY (passport_id, seq)) WITHOUT ROWID;
"""
LOG_COLUMNS = "seq, passport_id, tier, version, reader_did, height, time_s, prev, hash"


def new_master_key() -> bytes:
    """A fresh random master key."""
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def load_or_create_master_key(path: Path | str) -> bytes:
    """The master key in `path` (owner-only), created there on first use."""
    path = Path(path)
    if not path.exists():
        write_secret_file(path, new_master_key())
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise PassportError("master_key", f"{path} holds {len(key)} bytes, expected {KEY_BYTES}")
    return key


def canonical_passport_id(value: Any) -> str:
    """The lower-case bare form of a passport id (UUID, bare or urn:uuid:); raise PassportError."""
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        raise PassportError("passport_id", f"expected a UUID, got {value!r}")
    return str(uuid.UUID(value.removeprefix("urn:uuid:")))


def _aad(*parts: object) -> bytes:
    """Associated data binding a ciphertext to its slot."""
    return "|".join(str(part) for part in ("cityledger/passport/1", *parts)).encode()


class PassportStore:
    """Passport documents by tier and version, encrypted at rest, with the access log of restricted reads."""

    def __init__(self, directory: Path | str, master_key: bytes, max_log_group: int = MAX_LOG_GROUP) -> None:
        if len(master_key) != KEY_BYTES:
            raise PassportError("master_key", f"expected {KEY_BYTES} bytes, got {len(master_key)}")
        self.directory = Path(directory)
        (self.directory / BLOB_DIR).mkdir(parents=True, exist_ok=True)
        self._master = AESGCM(master_key)
        self._lock = threading.RLock()
        self._db = self._connect()
        self._db.executescript(SCHEMA_SQL)
        # The access log has a connection and a writer thread of its own (group commit, accesslog.py).
        self._log_db = self._connect()
        self._log = GroupCommitter(self._write_log, max_group=max_log_group)  # 1: a commit per read

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.directory / DB_FILE, isolation_level=None, check_same_thread=False)
        # WAL: a commit is one sequential append and fsync, not a rollback journal's several.
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return db

    def close(self) -> None:
        """Commit the queued log entries, then close the database."""
        self._log.close()
        self._log_db.close()
        self._db.close()

    # Writing.

    def put_document(self, document: dict[str, Any]) -> list[TierVersion]:
        """Validate a full document and store a new version of each tier that changed; the new versions."""
        try:
            size = len(canonical_json(document))
        except (TypeError, ValueError) as error:  # NaN, a set, bytes: nothing JSON can carry.
            raise PassportInvalid([SchemaIssue("$", f"not JSON: {error}")]) from None
        if size > MAX_DOCUMENT_BYTES:
            raise PassportInvalid([SchemaIssue("$", f"{size} bytes of JSON, at most {MAX_DOCUMENT_BYTES} allowed")])
        check_document(document)
        passport_id = canonical_passport_id(document["metadata"]["passportIdentifier"])
        written = []
        with self._lock:
            for tier, part in split(document).items():
                latest = self._latest(passport_id, tier)
                if latest is None or latest.hash_hex != compute_tier_hash(part):
                    written.append((tier, part, 1 if latest is None else latest.version + 1))
            return self._write(passport_id, written)

    def put_tier_version(self, passport_id: str, tier: Tier, version: int, part: dict[str, Any]) -> TierVersion:
        """Store `part` as `version` of one tier: it must be the next version and keep the document valid."""
        passport_id, _ = canonical_passport_id(passport_id), tier_rank(tier)
        if split(part)[tier] != part:
            raise PassportError("part", f"holds fields of another tier than {tier}")
        with self._lock:
            latest = self._latest(passport_id, tier)
            expected = 1 if latest is None else latest.version + 1
            if version != expected:
                raise VersionError("version", f"{tier} version {version} refused, the next one is {expected}")
            parts = {other: self._open(passport_id, other, None) for other in TIERS
                     if other != tier and self._latest(passport_id, other) is not None}
            check_document(merge({**parts, tier: part}))
            return self._write(passport_id, [(tier, part, version)])[0]

    def _write(self, passport_id: str, items: list[tuple[Tier, dict[str, Any], int]]) -> list[TierVersion]:
        """Encrypt and store each (tier, part, version); the files first, then the index in one transaction."""
        if any(version > MAX_TIER_VERSION for _, _, version in items):
            raise VersionError("version", f"at most {MAX_TIER_VERSION} versions of a tier")
        out, rows = [], []
        for tier, part, version in items:
            key = self._data_key(passport_id, tier)
            nonce = os.urandom(NONCE_BYTES)
            sealed = AESGCM(key).encrypt(nonce, canonical_json(part), _aad(passport_id, tier, version))
            write_secret_file(self._blob_path(passport_id, tier, version), nonce + sealed)
            out.append(TierVersion(passport_id, tier, version, compute_tier_hash(part)))
            rows.append((passport_id, tier, version, out[-1].hash_hex))
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO tier_versions VALUES (?, ?, ?, ?)", rows)
        return out

    def _data_key(self, passport_id: str, tier: Tier) -> bytes:
        """The data key of (passport, tier), made and stored wrapped on first use."""
        row = self._db.execute("SELECT wrapped FROM tier_keys WHERE passport_id = ? AND tier = ?",
                               (passport_id, tier)).fetchone()
        if row is not None:
            return self._unwrap(passport_id, tier, row[0])
        aad = _aad("key", passport_id, tier)
        key, nonce = AESGCM.generate_key(bit_length=8 * KEY_BYTES), os.urandom(NONCE_BYTES)
        wrapped = nonce + self._master.encrypt(nonce, key, aad)
        self._db.execute("INSERT INTO tier_keys VALUES (?, ?, ?)", (passport_id, tier, wrapped))
        return key

    def _unwrap(self, passport_id: str, tier: Tier, wrapped: bytes) -> bytes:
        """A data key opened with the master key."""
        try:
            return self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _aad("key", passport_id, tier))
        except InvalidTag:
            raise PassportError("master_key", f"does not open the keys of {self.directory}") from None

    def _data_keys(self, passport_ids: list[str], tier: Tier) -> dict[str, bytes]:
        """_data_key of many passports, read with one query per SQL_CHUNK of them."""
        wrapped: dict[str, bytes] = {}
        for start in range(0, len(passport_ids), SQL_CHUNK):
            chunk = passport_ids[start:start + SQL_CHUNK]
            wrapped.update(self._db.execute(f"SELECT passport_id, wrapped FROM tier_keys WHERE tier = ? AND "
                                            f"passport_id IN ({', '.join('?' * len(chunk))})", (tier, *chunk)))
        return {passport_id: self._unwrap(passport_id, tier, wrapped[passport_id]) if passport_id in wrapped
                else self._data_key(passport_id, tier) for passport_id in passport_ids}

    def _blob_path(self, passport_id: str, tier: Tier, version: int) -> Path:
        """Where one tier version's ciphertext lives."""
        folder = self.directory / BLOB_DIR / passport_id
        folder.mkdir(exist_ok=True)
        return folder / f"{tier}.{version}.bin"

    def claim_operator(self, passport_id: str, operator: str) -> str:
        """The operator who first stored `passport_id` (recorded now if none): who may update it off chain."""
        passport_id = canonical_passport_id(passport_id)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO operators VALUES (?, ?)", (passport_id, operator))
            return self._db.execute("SELECT operator FROM operators WHERE passport_id = ?",
                                    (passport_id,)).fetchone()[0]

    def get_operator(self, passport_id: str) -> str | None:
        """The operator who first stored `passport_id`, or None: read only, nothing claimed."""
        passport_id = canonical_passport_id(passport_id)
        with self._lock:
            row = self._db.execute("SELECT operator FROM operators WHERE passport_id = ?", (passport_id,)).fetchone()
        return None if row is None else row[0]

    # Reading.

    def get_versions(self, passport_id: str, tier: Tier) -> list[TierVersion]:
        """Every stored version of one tier, oldest first (no content, so no proof needed)."""
        passport_id, _ = canonical_passport_id(passport_id), tier_rank(tier)
        with self._lock:
            rows = self._db.execute("SELECT version, hash FROM tier_versions WHERE passport_id = ? AND tier = ? "
                                    "ORDER BY version", (passport_id, tier)).fetchall()
        return [TierVersion(passport_id, tier, version, hash_hex) for version, hash_hex in rows]

    def _latest(self, passport_id: str, tier: Tier) -> TierVersion | None:
        """The newest version of one tier, or None."""
        row = self._db.execute("SELECT version, hash FROM tier_versions WHERE passport_id = ? AND tier = ? "
                               "ORDER BY version DESC LIMIT 1", (passport_id, tier)).fetchone()
        return None if row is None else TierVersion(passport_id, tier, row[0], row[1])

    def read_tier(self, passport_id: str, tier: Tier, *, proof_ok: bool, reader_did: str, height: int,
                  time_s: int, version: int | None = None) -> dict[str, Any]:
        """One tier's part (latest or `version`); a restricted tier needs `proof_ok` and is logged."""
        parts, logged = self._read(passport_id, (tier,), proof_ok, reader_did, height, time_s, version)
        if logged is not None:
            logged.wait()
        return parts[tier]

    def export(self, passport_id: str, tier: Tier, *, proof_ok: bool, reader_did: str, height: int,
               time_s: int) -> dict[str, Any]:
        """The document up to `tier` (public ⊂ legitimate ⊂ authority), checked against the schema."""
        tier_rank(tier)
        parts, logged = self._read(passport_id, export_tiers(tier), proof_ok, reader_did, height, time_s, None)
        try:  # merged and validated while the log entry is being committed
            document = merge(parts, owned=True)  # the parts were just decrypted: nothing else holds them
            # Below the authority tier the schema's required fields of higher tiers are withheld on purpose.
            check_document(document, excused=lambda template: is_withheld(template, tier))
        finally:
            if logged is not None:
                logged.wait()  # answered only once the read is durably logged
        return document

    def _read(self, passport_id: str, tiers: tuple[Tier, ...], proof_ok: bool, reader_did: str, height: int,
              time_s: int, version: int | None) -> tuple[dict[Tier, dict[str, Any]], LogTicket | None]:
        """Decrypt the given tiers; the restricted ones' log entries go to the committer first: the caller
        must wait on the ticket (None: nothing to log) before it answers."""
        passport_id = canonical_passport_id(passport_id)
        for tier in tiers:
            tier_rank(tier)
        _check_reader(reader_did, height, time_s)
        restricted = [tier for tier in tiers if tier in RESTRICTED_TIERS]
        if restricted and proof_ok is not True:
            raise AccessDenied("proof", f"the {restricted[-1]} tier needs a verified presentation of its credential")
        with self._lock:
            found = {tier: self._find(passport_id, tier, version) for tier in tiers}
        # Logged before it is decrypted (a read that fails after this stays logged, never the reverse).
        logged = self._log.submit([(passport_id, tier, found[tier].version, reader_did, height, time_s)
                                   for tier in restricted]) if restricted else None
        with self._lock:
            parts = {tier: self._open(passport_id, tier, found[tier]) for tier in tiers}
        return parts, logged

    def _find(self, passport_id: str, tier: Tier, version: int | None) -> TierVersion:
        """The stored version asked for; raise NotFound."""
        if version is None:
            found = self._latest(passport_id, tier)
        else:
            found = next((each for each in self.get_versions(passport_id, tier) if each.version == version), None)
        if found is None:
            raise NotFound("passport_id", f"no {tier} tier version {version or 'latest'} of passport {passport_id}")
        return found

    def _open(self, passport_id: str, tier: Tier, version: int | TierVersion | None) -> dict[str, Any]:
        """Decrypt one tier version (a number, the latest, or one already found) and check it against its hash."""
        stored = version if isinstance(version, TierVersion) else self._find(passport_id, tier, version)
        blob = self._blob_path(passport_id, tier, stored.version).read_bytes()
        key = self._data_key(passport_id, tier)
        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                        _aad(passport_id, tier, stored.version))
        except InvalidTag as error:  # The file was changed, damaged or moved from another slot.
            raise InvariantBroken(f"passport {passport_id} {tier} v{stored.version}: ciphertext fails") from error
        part = json.loads(plain)
        if compute_tier_hash(part) != stored.hash_hex:
            raise InvariantBroken(f"passport {passport_id} {tier} v{stored.version}: hash differs from index")
        return part

    # The access log: one hash chain per passport (accesslog.py), its head kept in log_heads.

    def _write_log(self, reads: list[tuple[str, Tier, int, str, int, int]]) -> None:
        """Append (passport, tier, version, reader, height, time) reads to their passports' chains, in one tx
        on the log's own connection (the committer's thread only)."""
        if not reads:
            return
        db = self._log_db
        with db:
            db.execute("BEGIN IMMEDIATE")
            heads: dict[str, tuple[int, str]] = {}
            for passport_id, tier, version, reader_did, height, time_s in reads:
                seq, prev = heads.get(passport_id) or self._head(passport_id, db)
                seq, entry_hash = seq + 1, compute_entry_hash(seq + 1, passport_id, tier, version, reader_did,
                                                              height, time_s, prev)
                db.execute(f"INSERT INTO passport_log ({LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (seq, passport_id, tier, version, reader_did, height, time_s, prev, entry_hash))
                heads[passport_id] = (seq, entry_hash)
            db.executemany("INSERT INTO log_heads (passport_id, count, head) VALUES (?, ?, ?) ON CONFLICT "
                           "(passport_id) DO UPDATE SET count = excluded.count, head = excluded.head",
                           [(passport_id, seq, head) for passport_id, (seq, head) in heads.items()])

    def _head(self, passport_id: str, db: sqlite3.Connection | None = None) -> tuple[int, str]:
        row = (db or self._db).execute("SELECT count, head FROM log_heads WHERE passport_id = ?",
                                       (passport_id,)).fetchone()
        return (0, GENESIS_HEX) if row is None else (row[0], row[1])

    def get_log_head(self, passport_id: str) -> tuple[int, str]:
        """(entry count, head hash) of one passport's log: what is anchored; (0, GENESIS_HEX) if never read."""
        passport_id = canonical_passport_id(passport_id)
        with self._lock:
            return self._head(passport_id)

    def get_log(self, passport_id: str, after_seq: int = 0, limit: int = MAX_LOG_PAGE) -> list[AccessEntry]:
        """One passport's log entries after `after_seq`, oldest first, at most `limit` (≤ MAX_LOG_PAGE)."""
        if not 1 <= limit <= MAX_LOG_PAGE:
            raise PassportError("limit", f"expected 1..{MAX_LOG_PAGE}, got {limit}")
        passport_id = canonical_passport_id(passport_id)
        with self._lock:
            rows = self._db.execute(f"SELECT {LOG_COLUMNS} FROM passport_log WHERE passport_id = ? AND seq > ? "
                                    "ORDER BY seq LIMIT ?", (passport_id, after_seq, limit)).fetchall()
        return [AccessEntry(*row) for row in rows]

    def verify_log(self, passport_id: str) -> str:
        """Re-hash one passport's log page by page against its kept head; the head, or LogBroken."""
        prev, seq = GENESIS_HEX, 0
        while page := self.get_log(passport_id, after_seq=seq):
            prev = verify_chain(page, prev, seq + 1, canonical_passport_id(passport_id))
            seq = page[-1].seq
        if (seq, prev) != self.get_log_head(passport_id):
            raise LogBroken("head", f"the log re-hashes to entry {seq} {prev}, the kept head differs")
        return prev

    # Anchoring the heads (anchoring.py): one Merkle root per interval over the heads that moved.

    def prepare_anchor(self, max_leaves: int) -> PendingAnchor | None:
        """The anchor to send: the one prepared and not yet confirmed, else a new one over the moved heads."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT seq, root FROM anchor_roots WHERE height IS NULL").fetchone()
            if row is not None:
                return PendingAnchor(row[0], row[1], self._leaves(row[0]))
            moved = self._db.execute("SELECT passport_id, count, head FROM log_heads WHERE count > anchored "
                                     "ORDER BY passport_id LIMIT ?", (max_leaves,)).fetchall()
            if not moved:
                return None
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM anchor_roots").fetchone()[0]
            leaves = [HeadLeaf(*each) for each in moved]
            pending = PendingAnchor(seq, compute_heads_root(leaves), leaves)
            self._db.executemany("INSERT INTO anchor_leaves VALUES (?, ?, ?, ?, ?)",
                                 [(seq, index, leaf.passport_id, leaf.count, leaf.head)
                                  for index, leaf in enumerate(leaves)])
            self._db.execute("INSERT INTO anchor_roots VALUES (?, ?, ?, NULL)", (seq, pending.root, len(leaves)))
            return pending

    def confirm_anchor(self, seq: int, height: int) -> None:
        """Record that anchor `seq` is on chain at `height`: its heads are anchored."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE anchor_roots SET height = ? WHERE seq = ? AND height IS NULL", (height, seq))
            self._db.executemany("UPDATE log_heads SET anchored = MAX(anchored, ?) WHERE passport_id = ?",
                                 [(leaf.count, leaf.passport_id) for leaf in self._leaves(seq)])

    def _leaves(self, seq: int) -> list[HeadLeaf]:
        rows = self._db.execute("SELECT passport_id, count, head FROM anchor_leaves WHERE seq = ? ORDER BY idx",
                                (seq,)).fetchall()
        return [HeadLeaf(*row) for row in rows]

    def get_anchor_proofs(self, passport_id: str, limit: int = MAX_LOG_PAGE) -> list[HeadProof]:
        """The confirmed anchors that include this passport's head, oldest first, each with its Merkle proof."""
        passport_id = canonical_passport_id(passport_id)
        with self._lock:
            rows = self._db.execute("SELECT l.seq, r.height FROM anchor_leaves l JOIN anchor_roots r ON r.seq = l.seq "
                                    "WHERE l.passport_id = ? AND r.height IS NOT NULL ORDER BY l.seq LIMIT ?",
                                    (passport_id, limit)).fetchall()
            return [compute_head_proof(seq, height, self._leaves(seq), passport_id) for seq, height in rows]


class ReportBook:
    """The SoH reports of a PassportStore (reports.py): stored encrypted by batch, each batch's root to commit."""

    def __init__(self, store: PassportStore) -> None:
        self.store = store

    def last_seq(self, passport_id: str) -> int:
        """The last report sequence the service holds for a passport (0 if none)."""
        with self.store._lock:
            row = self.store._db.execute("SELECT MAX(seq) FROM soh_reports WHERE passport_id = ?",
                                         (passport_id,)).fetchone()
        return row[0] or 0

    def last_seqs(self, passport_ids: Iterable[str]) -> dict[str, int]:
        """last_seq of many passports (those without a report are absent), one query per SQL_CHUNK of them."""
        ids, out = sorted(set(passport_ids)), {}
        with self.store._lock:
            for start in range(0, len(ids), SQL_CHUNK):
                chunk = ids[start:start + SQL_CHUNK]
                out.update(self.store._db.execute(f"SELECT passport_id, MAX(seq) FROM soh_reports WHERE passport_id "
                                                  f"IN ({', '.join('?' * len(chunk))}) GROUP BY passport_id", chunk))
        return out

    def add_batch(self, reports: list[VerifiedReport]) -> PendingBatch:
        """Store verified reports, encrypted under each passport's legitimate-tier key, as the next batch."""
        store = self.store
        with store._lock, store._db:
            store._db.execute("BEGIN IMMEDIATE")
            seq = store._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM report_batches").fetchone()[0]
            keys = store._data_keys(list(dict.fromkeys(report.passport_id for report in reports)), "legitimate")
            ciphers = {passport_id: AESGCM(key) for passport_id, key in keys.items()}
            rows = []
            for report in reports:
                cipher = ciphers[report.passport_id]
                nonce = os.urandom(NONCE_BYTES)
                aad = _aad("report", report.passport_id, report.sequence)
                rows.append((report.passport_id, report.sequence, report.report_hash,
                             nonce + cipher.encrypt(nonce, report.body, aad), seq))
            store._db.executemany("INSERT INTO soh_reports VALUES (?, ?, ?, ?, ?)", rows)
            store._db.executemany("INSERT INTO soh_alerts VALUES (?, ?, ?)",
                                  [(r.passport_id, r.sequence, seq) for r in reports if r.alert])
            batch = PendingBatch(seq, compute_batch_root(reports), len(reports))
            store._db.execute("INSERT INTO report_batches VALUES (?, ?, ?, NULL)", (seq, batch.root, batch.size))
        return batch

    def pending(self) -> PendingBatch | None:
        """The oldest stored batch whose root is not yet confirmed on chain, or None."""
        with self.store._lock:
            row = self.store._db.execute("SELECT seq, root, size FROM report_batches WHERE height IS NULL "
                                         "ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else PendingBatch(*row)

    def confirm(self, seq: int, height: int) -> None:
        """Record that batch `seq`'s root is on chain at `height`."""
        with self.store._lock, self.store._db:
            self.store._db.execute("UPDATE report_batches SET height = ? WHERE seq = ?", (height, seq))

    def read(self, passport_id: str, seq: int) -> tuple[dict[str, Any], int]:
        """One stored report (decrypted) and its batch: for the passport's operator and owner."""
        store = self.store
        with store._lock:
            row = store._db.execute("SELECT sealed, batch FROM soh_reports WHERE passport_id = ? AND seq = ?",
                                    (passport_id, seq)).fetchone()
            if row is None:
                raise NotFound("seq", f"no report {seq} of passport {passport_id}")
            key = store._data_key(passport_id, "legitimate")
        plain = AESGCM(key).decrypt(row[0][:NONCE_BYTES], row[0][NONCE_BYTES:], _aad("report", passport_id, seq))
        return json.loads(plain), row[1]

    def latest_committed(self, passport_id: str) -> dict[str, Any] | None:
        """The newest stored report of a passport whose batch root is on chain (decrypted), or None."""
        with self.store._lock:
            row = self.store._db.execute(
                "SELECT r.seq FROM soh_reports r JOIN report_batches b ON b.seq = r.batch WHERE r.passport_id = ? "
                "AND b.height IS NOT NULL ORDER BY r.seq DESC LIMIT 1", (passport_id,)).fetchone()
        return None if row is None else self.read(passport_id, row[0])[0]

    def alerted(self, after: str, limit: int) -> list[str]:
        """Passports with an end-of-first-life alert in a batch committed on chain, by id after `after`."""
        with self.store._lock:
            return [row[0] for row in self.store._db.execute(
                "SELECT DISTINCT a.passport_id FROM soh_alerts a JOIN report_batches b ON b.seq = a.batch "
                "WHERE a.passport_id > ? AND b.height IS NOT NULL ORDER BY a.passport_id LIMIT ?", (after, limit))]

    def alerts(self, passport_id: str) -> list[tuple[int, int, int | None]]:
        """(report sequence, batch, the batch's height on chain or None) of each end-of-first-life alert."""
        with self.store._lock:
            return self.store._db.execute(
                "SELECT a.seq, a.batch, b.height FROM soh_alerts a JOIN report_batches b ON b.seq = a.batch "
                "WHERE a.passport_id = ? ORDER BY a.seq LIMIT ?", (passport_id, MAX_LOG_PAGE)).fetchall()


def _check_reader(reader_did: str, height: int, time_s: int) -> None:
    """Refuse a reader or time that cannot go into the log."""
    if not isinstance(reader_did, str) or not reader_did.startswith("did:") or len(reader_did) > MAX_READER_DID_CHARS:
        raise PassportError("reader_did", f"expected a DID of at most {MAX_READER_DID_CHARS} characters")
    for name, value in (("height", height), ("time_s", time_s)):
        if type(value) is not int or not 0 <= value <= MAX_INT64:
            raise PassportError(name, f"expected an integer 0..{MAX_INT64}, got {value!r}")
