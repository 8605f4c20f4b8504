"""The gateway: takes sealed windows off the broker, checks them, files them in the owners' vaults,
and anchors one Merkle root per interval over every record it received in it.

    gateway = Gateway(folder, vaults, lookup, anchor, host, port, password)
    gateway.start()   # subscribes to telemetry/# as the gateway user, QoS 1, a persistent session
                      # (shard=k, shards=n: gateway k of n, only its topic buckets, broker.shard_topics)
    gateway.stop()

Per batch of what has arrived (up to MAX_BATCH messages), in three threads and the worker processes:
  1. (checking thread) the stateless checks of verify.check_message (format, registration, wraps,
     and the topic must be the device's own); the signatures go to the worker processes
     (workers.py), a slice each, while the storing thread journals the batch before;
  2. (storing thread, batches in arrival order) the workers' verdicts and the sequence checks,
     message by message in arrival order (finish_message): a refusal stores nothing and is
     acknowledged (dropped);
  3. the accepted records are appended to the gateway's journal (journal.py) with one fsync;
  4. only then are the messages acknowledged to the broker (subscriber.py: one write of PUBACKs a batch);
  5. (filing thread, several journalled batches at once) the records go into their owners' vaults,
     durably, then the devices' last sequence numbers, the records' places in their interval and the
     last journal batch filed are committed together to the gateway's own SQLite file (state.sqlite).
A crash before 3 ends makes the broker deliver the batch again; after it, the journal has it and
recover() (run when a gateway opens its folder, and on start) files every batch past the last one
state.sqlite marks filed: again into the vaults idempotently (same record id), once into the state
(the mark and the records in one transaction). Sequence checks see journalled batches before they
are filed, so a batch the broker delivers again after 3 is dropped as replays. No acknowledged record
is lost, none is placed in an interval twice.

Intervals are the gateway's clock cut into interval_s slices, numbered time // interval_s. Once the
clock has left an interval, its records' ids in the order received give one root (anchor.py), kept
in state.sqlite and handed to `anchor(root, count, interval)`, then marked anchored. A crash between
the call and the mark hands the same root for the same interval again on restart: the callable must
treat a repeat as done (the ledger refuses a second root for the same interval). The callable for one
root over the whole fleet, one transaction per interval, is sdk.telemetry.gateway_anchor (consent's
AnchorGatewayRoot); make_anchor_msg below is the per-data-set form.

The record ids behind an anchored root stay in state.sqlite for proof_retention_s (PROOF_RETENTION_S)
to answer owners' inclusion proofs, then are deleted, MAX_PRUNE_ROWS a tick; the roots stay.

The gateway sees headers in clear (device, sequence number, data set, window) and ciphertext; never
a sample (docs/PRIVACY.md).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...modules.consent.messages import AnchorRecordsRoot
from ..vaults import VaultHost
from .anchor import MAX_RECORDS_PER_ROOT, InclusionProof, compute_inclusion_proof, compute_records_root
from .broker import GATEWAY_USER, TOPIC_PREFIX, device_topic, shard_topics
from .format import TelemetryError
from .journal import Journal
from .packets import Delivery, MqttError
from .subscriber import Subscriber
from .verify import CheckedMessage, DeviceLookup, VerifiedRecord, check_checked_signature, check_message, finish_message
from .workers import MAX_VERIFY_WORKERS, SignatureWorkers, Ticket, default_verify_workers

log = logging.getLogger(__name__)

INTERVAL_S = 60  # default anchoring interval
MAX_INTERVAL_S = 86_400
MAX_BATCH = 2_000  # messages the gateway verifies and stores in one durable step
MAX_SEQ_CACHE = 1_000_000  # devices whose last sequence number the gateway keeps in memory (~100 MB at most)
STORE_THREADS = 16  # owners' vaults one batch writes at once (their fsyncs overlap)
MAX_STAGED_BATCHES = 2  # batches checked and at the signature workers while the one before is stored
MAX_UNFILED_BATCHES = 8  # batches journalled and acknowledged, not yet filed into the vaults
MAX_FILE_BATCHES = 8  # journalled batches the filing thread files in one vault write per owner
TICK_S = 0.2  # how often an idle worker looks at the clock for a finished interval
CONNECT_S = 10.0  # how long start() waits for the broker's CONNACK and SUBACK
KEEPALIVE_S = 30
# How long the record ids behind an anchored root stay in state.sqlite to answer inclusion proofs;
# then they are deleted (the root stays): owners take their proofs within this window.
PROOF_RETENTION_S = 7 * 86_400
MAX_PROOF_RETENTION_S = 366 * 86_400
MAX_PRUNE_ROWS = 50_000  # record ids one tick deletes, so pruning never stalls the storing thread
GATEWAY_CLIENT_ID = "cityledger-gateway"  # fixed: the broker keeps this session's queue across restarts

AnchorFn = Callable[[bytes, int, int], None]
StoredFn = Callable[[list[VerifiedRecord]], None]  # told of each batch stored and acknowledged

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS last_seq (device TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS received (interval INTEGER NOT NULL, pos INTEGER NOT NULL,"
    " record_id BLOB NOT NULL, PRIMARY KEY (interval, pos)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS roots (interval INTEGER PRIMARY KEY, root BLOB NOT NULL,"
    " count INTEGER NOT NULL, anchored INTEGER NOT NULL)",
    # Intervals holding records not yet anchored: closing them never scans the history.
    "CREATE TABLE IF NOT EXISTS open_intervals (interval INTEGER PRIMARY KEY)",
    # An owner's proof request finds its record without scanning every interval.
    "CREATE INDEX IF NOT EXISTS received_by_id ON received (record_id)",
    # The last journal batch filed into the vaults and this state (journal.py): replay starts after it.
    "CREATE TABLE IF NOT EXISTS journal_applied (id INTEGER PRIMARY KEY CHECK (id = 0), batch INTEGER NOT NULL)",
)


class GatewayError(RuntimeError):
    """The gateway could not connect, subscribe or keep its state: the message says why."""


@dataclass(frozen=True)
class AnchoredRoot:
    """One interval's root as computed (and, once `anchored`, handed to the anchor callable)."""

    interval: int
    root: bytes
    count: int
    anchored: bool


def make_anchor_msg(data_set: str, root: bytes, count: int, interval: int) -> AnchorRecordsRoot:
    """The consent module's AnchorRecordsRoot for a root: what an anchor callable signs and sends
    (with sdk.txs) for the data set the gateway anchors under."""
    return AnchorRecordsRoot(data_set=data_set, interval=interval, root=root, count=count)


class GatewayState:
    """The gateway's durable state: last sequence per device, records per interval, roots."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()
        self._seq_cache: dict[str, int] = {}  # committed last_seq rows, so a message costs no query

    def last_seq(self, device: str) -> int | None:
        """The last sequence number accepted from device, None before its first."""
        with self._lock:
            cached = self._seq_cache.get(device)
            if cached is not None:
                return cached
            row = self._db.execute("SELECT seq FROM last_seq WHERE device = ?", (device,)).fetchone()
        return None if row is None else row[0]

    def raise_last_seq(self, rows: list[tuple[str, int]]) -> int:
        """Set (device, seq) as devices' last sequence numbers where higher than what is kept (a
        device moved here from another gateway, reshard.py); the number of devices changed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                changed = self._db.executemany(
                    "INSERT INTO last_seq VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET seq = excluded.seq"
                    " WHERE excluded.seq > last_seq.seq", rows).rowcount
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._seq_cache.clear()
        return changed

    def applied_batch(self) -> int:
        """The last journal batch filed (0 before the first)."""
        with self._lock:
            row = self._db.execute("SELECT batch FROM journal_applied WHERE id = 0").fetchone()
        return 0 if row is None else row[0]

    def commit(self, interval: int, records: list[VerifiedRecord]) -> None:
        """Advance the senders' sequence numbers and append the records to the interval, atomically."""
        self.commit_batches([(interval, records)], None)

    def commit_batches(self, parts: list[tuple[int, list[VerifiedRecord]]], applied: int | None) -> None:
        """Per (interval, records): advance the senders' sequence numbers and append the records to
        the interval (or the first one after the last rooted); and mark journal batches up to
        `applied` filed; all in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for interval, records in parts:
                    self._append(interval, records)
                if applied is not None:
                    self._db.execute("INSERT OR REPLACE INTO journal_applied VALUES (0, ?)", (applied,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            count = sum(len(records) for _, records in parts)
            if len(self._seq_cache) + count > MAX_SEQ_CACHE:
                self._seq_cache.clear()
            for _, records in parts:
                for record in records:
                    self._seq_cache[record.stored.header.device] = record.stored.header.seq

    def _append(self, interval: int, records: list[VerifiedRecord]) -> None:
        # Never into an interval already rooted (a clock set back): its root is final.
        rooted = self._db.execute("SELECT COALESCE(MAX(interval) + 1, 0) FROM roots").fetchone()[0]
        interval = max(interval, rooted)
        pos = self._db.execute("SELECT COALESCE(MAX(pos) + 1, 0) FROM received WHERE interval = ?",
                               (interval,)).fetchone()[0]
        if pos + len(records) > MAX_RECORDS_PER_ROOT:
            raise GatewayError(f"interval {interval}: more than {MAX_RECORDS_PER_ROOT} records")
        self._db.executemany("INSERT OR REPLACE INTO last_seq VALUES (?, ?)",
                             [(r.stored.header.device, r.stored.header.seq) for r in records])
        self._db.executemany("INSERT INTO received VALUES (?, ?, ?)",
                             [(interval, pos + i, r.record_id) for i, r in enumerate(records)])
        self._db.execute("INSERT OR IGNORE INTO open_intervals VALUES (?)", (interval,))

    def record_ids(self, interval: int) -> list[bytes]:
        """The ids of the interval's records, in the order received."""
        with self._lock:
            rows = self._db.execute("SELECT record_id FROM received WHERE interval = ? ORDER BY pos",
                                    (interval,)).fetchall()
        return [row[0] for row in rows]

    def find_record(self, record_id: bytes) -> tuple[int, int] | None:
        """(interval, position) of a record, or None."""
        with self._lock:
            return self._db.execute("SELECT interval, pos FROM received WHERE record_id = ? ORDER BY interval LIMIT 1",
                                    (record_id,)).fetchone()

    def unanchored_before(self, interval: int) -> list[int]:
        """Intervals before `interval` that hold records and are not yet anchored, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT interval FROM open_intervals WHERE interval < ? ORDER BY interval",
                                    (interval,)).fetchall()
        return [row[0] for row in rows]

    def save_root(self, interval: int, root: bytes, count: int, anchored: bool) -> None:
        """Keep an interval's root; anchored once the anchor callable returned."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO roots VALUES (?, ?, ?, ?)", (interval, root, count, int(anchored)))
            if anchored:
                self._db.execute("DELETE FROM open_intervals WHERE interval = ?", (interval,))
            self._db.execute("COMMIT")

    def prune(self, before: int, limit: int = MAX_PRUNE_ROWS) -> int:
        """Delete up to `limit` record ids of the oldest interval if it is anchored and before
        `before`; the number deleted. Roots stay; an interval not yet anchored is never pruned (nor
        any after it: intervals are anchored oldest first)."""
        with self._lock:
            (oldest,) = self._db.execute("SELECT MIN(interval) FROM received").fetchone()
            if oldest is None or oldest >= before:
                return 0
            if self._db.execute("SELECT 1 FROM open_intervals WHERE interval = ?", (oldest,)).fetchone():
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            deleted = self._db.execute(
                "DELETE FROM received WHERE interval = ? AND pos IN (SELECT pos FROM received WHERE interval = ?"
                " ORDER BY pos LIMIT ?)", (oldest, oldest, limit)).rowcount
            self._db.execute("COMMIT")
        return deleted

    def roots(self) -> list[AnchoredRoot]:
        """Every root computed, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT interval, root, count, anchored FROM roots ORDER BY interval").fetchall()
        return [AnchoredRoot(i, r, c, bool(a)) for i, r, c, a in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


@dataclass
class _Staged:
    """A batch past its stateless checks, its signatures being verified (a ticket) or verified."""

    messages: list
    checked: list  # per message: a CheckedMessage, or the refusal code of a message refused already
    verdicts: Ticket | list[bool]  # signature verdicts of the CheckedMessages, in order


@dataclass
class _Journalled:
    """A batch journalled and acknowledged, waiting to be filed into the vaults and the state."""

    number: int | None  # the journal's batch number (None: nothing accepted, nothing journalled)
    interval: int
    records: list[VerifiedRecord]
    refused: Counter
    messages: int


def gateway_client_id(shard: int, shards: int) -> str:
    """The MQTT client id of gateway `shard` of `shards`: fixed, so the broker keeps its session."""
    return GATEWAY_CLIENT_ID if shards == 1 else f"{GATEWAY_CLIENT_ID}-{shard}-of-{shards}"


class Gateway:
    """Subscribes as the gateway user and files every accepted message in its owner's vault."""

    def __init__(self, folder: Path | str, vaults: VaultHost, lookup: DeviceLookup, anchor: AnchorFn,
                 host: str, port: int, password: str, interval_s: int = INTERVAL_S,
                 clock: Callable[[], float] = time.time, verify_workers: int | None = None,
                 on_stored: StoredFn | None = None, proof_retention_s: int = PROOF_RETENTION_S,
                 shard: int = 0, shards: int = 1) -> None:
        self.topics = shard_topics(shard, shards)  # raises on a shard out of range
        # Each shard its own persistent session at the broker (and its own folder: the caller's).
        self.client_id = gateway_client_id(shard, shards)
        if not 1 <= interval_s <= MAX_INTERVAL_S:
            raise ValueError(f"interval_s: expected 1 to {MAX_INTERVAL_S}, got {interval_s}")
        workers = default_verify_workers() if verify_workers is None else verify_workers
        if not 0 <= workers <= MAX_VERIFY_WORKERS:
            raise ValueError(f"verify_workers: expected 0 (check in the gateway's thread) to {MAX_VERIFY_WORKERS}, "
                             f"got {workers}")
        if not interval_s <= proof_retention_s <= MAX_PROOF_RETENTION_S:
            raise ValueError(f"proof_retention_s: expected {interval_s} (the interval) to {MAX_PROOF_RETENTION_S}, "
                             f"got {proof_retention_s}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state = GatewayState(self.folder / "state.sqlite")
        self.journal = Journal(self.folder / "journal", self.state.applied_batch())
        self.vaults, self.lookup, self.anchor = vaults, lookup, anchor
        self.host, self.port, self.password = host, port, password
        self.interval_s, self.clock = interval_s, clock
        self.on_stored, self.proof_retention_s = on_stored, proof_retention_s
        self.workers = SignatureWorkers(workers) if workers else None
        self._store_pool = ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="telemetry-vault-write")
        self.stored = 0
        self.replayed = 0  # records journalled before a restart and filed by recover()
        self.refused: Counter[str] = Counter()
        self._inbox: deque = deque()
        self._arrived = threading.Event()
        self._staged: queue.Queue = queue.Queue(maxsize=MAX_STAGED_BATCHES)
        self._unfiled: queue.Queue = queue.Queue(maxsize=MAX_UNFILED_BATCHES)
        # Sequence numbers journalled and acknowledged but not yet in state.sqlite: the storing
        # thread checks against these first.
        self._journalled_seq: dict[str, int] = {}
        self._seq_lock = threading.Lock()
        self._done = threading.Condition()
        self._processed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._client: Subscriber | None = None
        self.failure: BaseException | None = None
        self.recover()

    def current_interval(self) -> int:
        """The interval the clock is in now."""
        return int(self.clock()) // self.interval_s

    # -- MQTT ---------------------------------------------------------------------------------

    def start(self) -> None:
        """File what the journal holds, start the signature workers and the three threads, connect
        (persistent session) and subscribe to telemetry/# at QoS 1."""
        self._stop.clear()
        if self.workers is not None:
            self.workers.start()
        for stale in (self._staged, self._unfiled):  # a stop's leftovers: unacknowledged, or in the journal
            while not stale.empty():
                stale.get_nowait()
        self.recover()  # what a failure left in the journal, before the broker hands over anything new
        self._threads = [threading.Thread(target=self._check_loop, name="telemetry-gateway-check", daemon=True),
                         threading.Thread(target=self._run, name="telemetry-gateway", daemon=True),
                         threading.Thread(target=self._file_loop, name="telemetry-gateway-file", daemon=True)]
        for thread in self._threads:
            thread.start()
        client = Subscriber(self.host, self.port, self.client_id, GATEWAY_USER, self.password, self.topics,
                            self._on_messages, KEEPALIVE_S)
        try:
            client.start(CONNECT_S)
        except (OSError, MqttError) as exc:
            self.stop()
            raise GatewayError(f"broker {self.host}:{self.port}: {exc}") from None
        self._client = client

    def _on_messages(self, deliveries: list[Delivery]) -> None:
        # A deque and an event, not a queue.Queue: no lock taken per message on the reading thread.
        self._inbox.extend(deliveries)
        if not self._arrived.is_set():
            self._arrived.set()

    def stop(self) -> None:
        """Disconnect and stop the threads after the batches in hand; unacknowledged messages stay
        with the broker for the next start."""
        client, self._client = self._client, None
        if client is not None:
            client.stop()
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self.workers is not None:
            self.workers.close()

    def close(self) -> None:
        """Stop and close the state database and the journal."""
        self.stop()
        self._store_pool.shutdown()
        self.journal.close()
        self.state.close()

    def recover(self) -> int:
        """File what the journal holds past the last batch filed (a crash or failure between the
        acknowledgement and the filing); the number of records filed. Idempotent: a vault keeps a
        record once, and the state marks each batch filed in the same transaction as its records."""
        filed = 0
        for entry in self.journal.replay():
            self._store(entry.records)
            self.state.commit_batches([(entry.interval, entry.records)], entry.batch)
            filed += len(entry.records)
        self.journal.release(self.state.applied_batch())
        with self._seq_lock:
            self._journalled_seq.clear()
        self.replayed += filed
        if filed:
            log.warning("gateway: filed %d journalled record(s) left unfiled by a stop or crash", filed)
        return filed

    # -- the two stages -----------------------------------------------------------------------

    def _check_loop(self) -> None:
        """Stage one: take batches off the inbox, check them and hand their signatures to the workers."""
        inbox = self._inbox
        while not self._stop.is_set():
            if not inbox:
                self._arrived.clear()
                if not inbox:  # nothing came between the look and the clear
                    self._arrived.wait(TICK_S)
                continue
            batch = [inbox.popleft() for _ in range(min(len(inbox), MAX_BATCH))]
            try:
                staged = self._prepare(batch)
            except Exception as exc:  # a worker died: nothing of this batch is acknowledged
                self._fail(exc)
                return
            self._put_unless_stopping(self._staged, staged)

    def _run(self) -> None:
        """Stage two: journal the checked batches in order and acknowledge them; stop on a failure."""
        while not self._stop.is_set():
            try:
                staged = self._staged.get(timeout=TICK_S)
            except queue.Empty:
                continue
            try:
                # Stopping: a batch not handed over stays in the journal and is filed by recover().
                self._put_unless_stopping(self._unfiled, self._commit_staged(staged))
            except Exception as exc:  # the journal failed: keep nothing unacknowledged as done
                self._fail(exc)
                return

    def _put_unless_stopping(self, into: queue.Queue, item) -> None:
        """Put item in a bounded queue, waiting while it is full, unless the gateway stops meanwhile."""
        while not self._stop.is_set():
            try:
                into.put(item, timeout=TICK_S)
                return
            except queue.Full:
                continue

    def _file_loop(self) -> None:
        """Stage three: file journalled batches into the vaults and the state (several at once when
        they queue up), close finished intervals; after stop(), file what is queued, then end."""
        while True:
            try:
                batches = [self._unfiled.get(timeout=TICK_S)]
            except queue.Empty:
                batches = []
            while batches and len(batches) < MAX_FILE_BATCHES:
                try:
                    batches.append(self._unfiled.get_nowait())
                except queue.Empty:
                    break
            try:
                if batches:
                    self._file(batches)
                self.close_finished_intervals()
            except Exception as exc:  # a vault or the state failed: the journal keeps the batches
                self._fail(exc)
                return
            if not batches and self._stop.is_set() and self._unfiled.empty():
                return

    def _fail(self, exc: BaseException) -> None:
        log.error("gateway: stopping after a failure", exc_info=exc)
        self.failure = exc
        self._stop.set()
        # Disconnect: the broker keeps what was not acknowledged for the next start.
        client, self._client = self._client, None
        if client is not None:
            client.stop()
        with self._done:
            self._done.notify_all()

    def process_batch(self, messages: list) -> None:
        """Verify, journal, acknowledge, then file a batch of MQTT messages (refusals acknowledged too)."""
        self._file([self._commit_staged(self._prepare(messages))])

    def _prepare(self, messages: list) -> _Staged:
        """Every check but the sequence numbers; the signatures go to the workers (or are checked here)."""
        checked: list = []
        for message in messages:
            checked.append(self._check(message))
        todo = [c for c in checked if isinstance(c, CheckedMessage)]
        if self.workers is None:
            return _Staged(messages, checked, [check_checked_signature(c) for c in todo])
        return _Staged(messages, checked, self.workers.submit(
            [(c.device.public_key, c.signing_bytes, c.message.signature) for c in todo]))

    def _check(self, message) -> CheckedMessage | str:
        """A message's stateless checks: the checked message, or the code it is refused with."""
        if not message.topic.startswith(TOPIC_PREFIX):
            return "wrong_topic"
        try:
            checked = check_message(message.payload, self.lookup)
        except TelemetryError as exc:
            log.warning("gateway: refused a message on %s: %s (%s)", message.topic, exc, exc.code)
            return exc.code
        # The ACL binds a connection to its topic; this binds the topic to the signer.
        if message.topic != device_topic(checked.message.header.device):
            return "wrong_topic"
        return checked

    def _commit_staged(self, staged: _Staged) -> _Journalled:
        """Sequence checks in arrival order, then journal the batch (one fsync) and acknowledge it."""
        verdicts = iter(staged.verdicts if isinstance(staged.verdicts, list) else self.workers.result(staged.verdicts))
        accepted: list[VerifiedRecord] = []
        refused: Counter[str] = Counter()
        seen: dict[str, int] = {}  # sequence numbers accepted earlier in this batch
        for message, checked in zip(staged.messages, staged.checked):
            if isinstance(checked, str):
                refused[checked] += 1
                continue
            record = self._finish(message, checked, next(verdicts), seen, refused)
            if record is not None:
                accepted.append(record)
                seen[record.stored.header.device] = record.stored.header.seq
        interval, number = self.current_interval(), None
        if accepted:
            number = self.journal.append(interval, accepted)  # durable before anything is acknowledged
            with self._seq_lock:
                self._journalled_seq.update(seen)
        client = self._client
        if client is not None:
            client.ack(staged.messages)  # one write for the batch
        return _Journalled(number, interval, accepted, refused, len(staged.messages))

    def _file(self, batches: list[_Journalled]) -> None:
        """File journalled batches in their owners' vaults, then in the state (their sequence
        numbers, their places in the intervals, the journal batch they reach), then count them."""
        # A batch already filed (by recover() after a stop) is never filed twice.
        batches = [batch for batch in batches if batch.number is None or batch.number > self.journal.applied]
        records = [record for batch in batches for record in batch.records]
        self._store(records)
        numbers = [batch.number for batch in batches if batch.number is not None]
        if records:
            self.state.commit_batches([(batch.interval, batch.records) for batch in batches if batch.records],
                                      max(numbers))
            with self._seq_lock:
                for record in records:
                    header = record.stored.header
                    if self._journalled_seq.get(header.device) == header.seq:
                        del self._journalled_seq[header.device]  # state.sqlite has it now
            self.journal.release(max(numbers))
        with self._done:
            self.stored += len(records)
            for batch in batches:
                self.refused.update(batch.refused)
                self._processed += batch.messages
            self._done.notify_all()
        if records and self.on_stored is not None:
            self.on_stored(records)

    def _store(self, accepted: list[VerifiedRecord]) -> None:
        """Put the records in their owners' vaults, the owners' vaults written side by side (each
        write ends in fsyncs, which release the GIL and which the disk can overlap)."""
        by_owner: dict[str, list[VerifiedRecord]] = {}
        for record in accepted:
            by_owner.setdefault(record.owner, []).append(record)
        owners = list(by_owner)
        # No more owners at once than the host keeps open: a vault in use is never closed under a write.
        step = self.vaults.max_open
        for first in range(0, len(owners), step):
            vaults = [(self.vaults.vault(owner), by_owner[owner]) for owner in owners[first:first + step]]
            if len(vaults) == 1:
                vaults[0][0].put_verified(vaults[0][1], ids_computed=True)
                continue
            for done in [self._store_pool.submit(vault.put_verified, records, True) for vault, records in vaults]:
                done.result()  # raises the first failure: nothing of the batch is acknowledged

    def _finish(self, message, checked: CheckedMessage, signature_ok: bool, seen: dict[str, int],
                refused: Counter[str]) -> VerifiedRecord | None:
        """The verified record of a checked message, or None (counted by reason) if refused."""
        device = checked.message.header.device
        if device in seen:
            last = seen[device]
        else:
            with self._seq_lock:
                last = self._journalled_seq.get(device)
            if last is None:
                last = self.state.last_seq(device)
        try:
            record = finish_message(checked, last, signature_ok)
        except TelemetryError as exc:
            refused[exc.code] += 1
            log.warning("gateway: refused a message on %s: %s (%s)", message.topic, exc, exc.code)
            return None
        if record.gap:
            log.warning("gateway: %d message(s) missing from %s before seq %d", record.gap, device,
                        record.stored.header.seq)
        return record

    def wait_processed(self, count: int, timeout_s: float) -> bool:
        """Wait until `count` messages were processed since start (stored or refused); False on timeout
        or worker failure."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            while self._processed < count and self.failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._done.wait(left)
            return self._processed >= count

    # -- intervals ----------------------------------------------------------------------------

    def close_finished_intervals(self) -> list[AnchoredRoot]:
        """Root and anchor every interval the clock has left that holds unanchored records."""
        done = []
        for interval in self.state.unanchored_before(self.current_interval()):
            ids = self.state.record_ids(interval)
            root = compute_records_root(ids)
            self.state.save_root(interval, root, len(ids), anchored=False)
            try:
                self.anchor(root, len(ids), interval)
            except Exception:  # the ledger unreachable, say: the same root is tried again next tick
                log.exception("gateway: anchoring interval %d failed; retrying", interval)
                break
            self.state.save_root(interval, root, len(ids), anchored=True)
            done.append(AnchoredRoot(interval, root, len(ids), True))
        self.state.prune(self.current_interval() - self.proof_retention_s // self.interval_s)
        return done

    def roots(self) -> list[AnchoredRoot]:
        """Every interval's root so far, oldest first."""
        return self.state.roots()

    def inclusion_proof(self, record_id: bytes) -> tuple[int, InclusionProof] | None:
        """(interval, proof) of a received record against its interval's root, or None if unknown
        or pruned (anchored more than proof_retention_s ago)."""
        found = self.state.find_record(record_id)
        if found is None:
            return None
        interval, pos = found
        return interval, compute_inclusion_proof(self.state.record_ids(interval), pos)
