"""The access log: every read of a restricted tier, one hash chain per passport, its head anchored on chain.

Each passport has a log of its own: entry n of passport P hashes its fields (P and n among them)
and entry n-1's hash, so dropping, changing or reordering any entry changes every later hash of
P's chain and nothing else: reads of other passports never move P's head. The heads are anchored
on chain (anchoring.py): a Merkle root over the heads that moved, one per interval.

Appends go through a GroupCommitter: one writer thread commits every append queued meanwhile in one
transaction, so concurrent reads share an fsync; each read is answered only once it is committed.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable

from .tiers import canonical_json
from .types import AccessEntry, LogBroken, PassportError

GENESIS_HEX = "00" * 32  # the `prev` of every passport's first entry
LOG_DOMAIN = "cityledger/passport-access/2"  # /2: per-passport chains (/1 chained the whole node)
MAX_LOG_GROUP = 4_096  # reads one group commit writes at most (an export's tiers are one); the rest go next


def compute_entry_hash(seq: int, passport_id: str, tier: str, version: int, reader_did: str,
                       height: int, time_s: int, prev_hex: str) -> str:
    """SHA-256 (hex) of one entry's canonical JSON, chained to `prev_hex`."""
    body = {"domain": LOG_DOMAIN, "seq": seq, "passport_id": passport_id, "tier": tier,
            "version": version, "reader_did": reader_did, "height": height, "time_s": time_s,
            "prev": prev_hex}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def verify_chain(entries: Iterable[AccessEntry], prev_hex: str = GENESIS_HEX, first_seq: int = 1,
                 passport_id: str | None = None) -> str:
    """The head hash of one passport's `entries` read in order from `first_seq` after `prev_hex`; raise LogBroken."""
    expected_seq = first_seq
    for entry in entries:
        if passport_id is None:
            passport_id = entry.passport_id
        if entry.passport_id != passport_id:
            raise LogBroken("passport_id", f"entry {entry.seq} belongs to passport {entry.passport_id}, "
                                           f"not {passport_id}")
        if entry.seq != expected_seq:
            raise LogBroken("seq", f"entry {entry.seq} found where entry {expected_seq} belongs")
        if entry.prev_hex != prev_hex:
            raise LogBroken("prev", f"entry {entry.seq} does not follow the hash of entry {entry.seq - 1}")
        recomputed = compute_entry_hash(entry.seq, entry.passport_id, entry.tier, entry.version,
                                        entry.reader_did, entry.height, entry.time_s, entry.prev_hex)
        if recomputed != entry.hash_hex:
            raise LogBroken("hash", f"entry {entry.seq} does not hash to its recorded hash")
        prev_hex, expected_seq = entry.hash_hex, expected_seq + 1
    return prev_hex


class LogTicket:
    """One submitted append: `wait` returns once it is committed (fsync'd), or raises what the commit raised."""

    def __init__(self, reads: list) -> None:
        self.reads = reads
        self.error: BaseException | None = None
        self._done = threading.Event()

    def finish(self, error: BaseException | None) -> None:
        self.error = error
        self._done.set()

    def wait(self) -> None:
        """Block until the append is durable; raise the commit's error if it failed."""
        self._done.wait()
        if self.error is not None:
            raise self.error


class GroupCommitter:
    """Group commit: appends from any number of threads, written by one thread of its own.

    Whatever is queued while a commit (and its fsync) runs goes into the next commit together, so
    concurrent readers share one fsync instead of queueing for one each. Nothing is weakened: a
    reader is answered only after `wait` returns, once its own entries are committed. The caller
    can do its own work (decrypting, validating) between `submit` and `wait`.
    """

    def __init__(self, write: Callable[[list], None], name: str = "passport-log",
                 max_group: int = MAX_LOG_GROUP) -> None:
        self._write, self._name, self._max_group = write, name, max(1, max_group)
        self._cv = threading.Condition()
        self._queue: list[LogTicket] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, reads: list) -> LogTicket:
        """Queue `reads` for the next commit; the ticket to wait on."""
        ticket = LogTicket(reads)
        with self._cv:
            if self._closed:
                raise PassportError("store", "the passport store is closed")
            self._queue.append(ticket)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cv.notify()
        return ticket

    def _run(self) -> None:
        """Commit everything queued, one write per round, until closed and drained."""
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:self._max_group], self._queue[self._max_group:]
            error = None
            try:
                self._write([read for ticket in batch for read in ticket.reads])
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter of this batch, who raises it
                error = exc
            for ticket in batch:
                ticket.finish(error)

    def close(self) -> None:
        """Commit what is queued, then stop the thread; later submits are refused."""
        with self._cv:
            self._closed = True
            self._cv.notify()
            thread = self._thread
        if thread is not None:
            thread.join()
