"""The fleet's anchoring point: the shards' interval roots in, one root per interval out.

    fleet = FleetAnchor(path, shards, interval_s, anchor, last_anchored)
    fleet.hand(ShardRoot(k, interval, root, count))  # durable when it returns; a repeat is a no-op
    fleet.closed(k, below)                           # shard k has handed every root of intervals < below
    fleet.tick()                                     # anchors every fleet interval that is due

A node whose gateway runs as n shard processes (shards.py) runs one of these: each shard hands it its
interval roots instead of anchoring them, and it anchors ONE root per interval over them, so the fleet
costs one transaction per interval whatever n is (`anchor(root, count, interval)`, the same callable
and the same gateway DID a single gateway anchors with).

When: fleet interval I (the clock's interval, numbered as the shards number theirs) is due once the
clock has left it and every shard has said it closed I (closed(k, below > I)), or `wait_s`
(SHARD_WAIT_S) after I ended, whichever comes first: a shard that is late or down holds the fleet back
by that much at most. What: every root handed and not yet placed whose interval is <= I, in (shard,
interval) order, each shard with none standing as (k, I, EMPTY_ROOT, 0) (anchor.py); the count
anchored is the records under all of them. A root handed after its interval was anchored (a late or
restarted shard) goes into the next fleet interval anchored, with its own interval in its leaf: never
lost, never in two fleet roots. The placement (which roots make interval I's tree) is committed to
fleet.sqlite before the anchor call; after a crash the same root is sent again for the same interval,
and the anchor callable treats a repeat as done (the ledger refuses a second root for an interval).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .anchor import EMPTY_ROOT, MAX_RECORDS_PER_ROOT, FleetProof, InclusionProof, ShardRoot, compute_fleet_proof, \
    compute_fleet_root

log = logging.getLogger(__name__)

SHARD_WAIT_S = 30  # how long past an interval's end the fleet waits for a shard that has not closed it
MAX_SHARD_WAIT_S = 3_600

AnchorFn = Callable[[bytes, int, int], None]

_SCHEMA = (
    # `fleet`: the fleet interval whose root covers this shard root (NULL: not placed yet).
    "CREATE TABLE IF NOT EXISTS shard_roots (shard INTEGER NOT NULL, interval INTEGER NOT NULL, root BLOB NOT NULL,"
    " count INTEGER NOT NULL, fleet INTEGER, PRIMARY KEY (shard, interval)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS shard_roots_unplaced ON shard_roots (fleet, interval)",
    "CREATE TABLE IF NOT EXISTS fleet_roots (interval INTEGER PRIMARY KEY, root BLOB NOT NULL,"
    " count INTEGER NOT NULL, shards INTEGER NOT NULL, anchored INTEGER NOT NULL)",
)


class FleetError(RuntimeError):
    """A shard handed something the fleet cannot take: the message says what."""


@dataclass(frozen=True)
class FleetRoot:
    """One fleet interval's root, the records under it, and whether the anchor callable took it."""

    interval: int
    root: bytes
    count: int
    anchored: bool


class FleetAnchor:
    """The shards' roots, placed in fleet intervals and anchored one root per interval."""

    def __init__(self, path: Path | str, shards: int, interval_s: int, anchor: AnchorFn,
                 last_anchored: Callable[[], int] = lambda: 0, wait_s: int = SHARD_WAIT_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 <= wait_s <= MAX_SHARD_WAIT_S:
            raise ValueError(f"wait_s: expected 0 to {MAX_SHARD_WAIT_S}, got {wait_s}")
        self.shards, self.interval_s, self.anchor, self.last_anchored = shards, interval_s, anchor, last_anchored
        self.wait_s, self.clock = wait_s, clock
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # A hand-over is acknowledged to its shard once committed: FULL, so a power cut keeps it too.
        for statement in ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", *_SCHEMA):
            self._db.execute(statement)
        self._lock = threading.Lock()
        self._closed_below: dict[int, int] = {}  # per shard: every root of an interval below this is handed

    def hand(self, shard: ShardRoot) -> None:
        """Keep a shard's root durably (a repeat of the same root is a no-op); FleetError if the fleet
        holds another root for that shard's interval."""
        if not 0 <= shard.shard < self.shards or not 1 <= shard.count <= MAX_RECORDS_PER_ROOT:
            raise FleetError(f"shard root: expected shard 0 to {self.shards - 1} and count 1 to "
                             f"{MAX_RECORDS_PER_ROOT}, got shard {shard.shard}, count {shard.count}")
        with self._lock:
            held = self._db.execute("SELECT root, count FROM shard_roots WHERE shard = ? AND interval = ?",
                                    (shard.shard, shard.interval)).fetchone()
            if held is None:
                self._db.execute("INSERT INTO shard_roots VALUES (?, ?, ?, ?, NULL)",
                                 (shard.shard, shard.interval, shard.root, shard.count))
            elif (bytes(held[0]), held[1]) != (shard.root, shard.count):
                raise FleetError(f"shard {shard.shard}, interval {shard.interval}: the fleet holds another root")

    def closed(self, shard: int, below: int) -> None:
        """Shard `shard` has handed the roots of every interval below `below` that holds records."""
        with self._lock:
            self._closed_below[shard] = max(self._closed_below.get(shard, 0), below)

    def tick(self) -> list[FleetRoot]:
        """Anchor what a crash left placed but not anchored, then every fleet interval now due; the
        roots anchored. An anchor failure leaves the rest for the next tick."""
        done = []
        while True:
            root = self._unanchored() or self._place_due()
            if root is None:
                return done
            try:
                self.anchor(root.root, root.count, root.interval)
            except Exception:  # the ledger unreachable, say: the same root is sent again next tick
                log.exception("fleet: anchoring interval %d failed; retrying", root.interval)
                return done
            with self._lock:
                self._db.execute("UPDATE fleet_roots SET anchored = 1 WHERE interval = ?", (root.interval,))
            done.append(FleetRoot(root.interval, root.root, root.count, True))

    def _unanchored(self) -> FleetRoot | None:
        with self._lock:
            row = self._db.execute("SELECT interval, root, count FROM fleet_roots WHERE anchored = 0"
                                   " ORDER BY interval LIMIT 1").fetchone()
        return None if row is None else FleetRoot(row[0], bytes(row[1]), row[2], False)

    def _place_due(self) -> FleetRoot | None:
        """Place the roots of the next fleet interval if it is due, committed before it is anchored."""
        now = self.clock()
        with self._lock:
            (oldest,) = self._db.execute("SELECT MIN(interval) FROM shard_roots WHERE fleet IS NULL").fetchone()
            if oldest is None:
                return None
            (last,) = self._db.execute("SELECT COALESCE(MAX(interval), 0) FROM fleet_roots").fetchone()
            target = max(oldest, last + 1, self.last_anchored() + 1)
            if int(now) // self.interval_s <= target:
                return None  # the clock is still in it
            everyone = all(self._closed_below.get(k, 0) > target for k in range(self.shards))
            if not everyone and now < (target + 1) * self.interval_s + self.wait_s:
                return None
            placed = self._db.execute("SELECT shard, interval, root, count FROM shard_roots WHERE fleet IS NULL"
                                      " AND interval <= ? ORDER BY shard, interval", (target,)).fetchall()
            leaves = _with_empty(self.shards, target, [ShardRoot(s, i, bytes(r), c) for s, i, r, c in placed])
            root = FleetRoot(target, compute_fleet_root(leaves), sum(leaf.count for leaf in leaves), False)
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("UPDATE shard_roots SET fleet = ? WHERE shard = ? AND interval = ?",
                                 [(target, s, i) for s, i, _, _ in placed])
            self._db.execute("INSERT INTO fleet_roots VALUES (?, ?, ?, ?, 0)", (target, root.root, root.count,
                                                                                self.shards))
            self._db.execute("COMMIT")
        if not everyone:
            late = sorted(k for k in range(self.shards) if self._closed_below.get(k, 0) <= target)
            log.warning("fleet: interval %d anchored without shard(s) %s (late or down; their roots go into a "
                        "later interval)", target, late)
        return root

    def leaves(self, interval: int) -> list[ShardRoot]:
        """The shard roots under a fleet interval's root, in tree order (empty if none placed there)."""
        with self._lock:
            row = self._db.execute("SELECT shards FROM fleet_roots WHERE interval = ?", (interval,)).fetchone()
            if row is None:
                return []
            placed = self._db.execute("SELECT shard, interval, root, count FROM shard_roots WHERE fleet = ?"
                                      " ORDER BY shard, interval", (interval,)).fetchall()
        return _with_empty(row[0], interval, [ShardRoot(s, i, bytes(r), c) for s, i, r, c in placed])

    def fleet_interval(self, shard: int, interval: int) -> int | None:
        """The fleet interval whose root covers a shard's root, None while it is not placed."""
        with self._lock:
            row = self._db.execute("SELECT fleet FROM shard_roots WHERE shard = ? AND interval = ?",
                                   (shard, interval)).fetchone()
        return None if row is None else row[0]

    def proof(self, shard: int, interval: int, record: InclusionProof) -> tuple[int, FleetProof] | None:
        """(fleet interval, fleet proof) of a record whose proof against its shard's root is `record`."""
        fleet = self.fleet_interval(shard, interval)
        if fleet is None:
            return None
        leaves = self.leaves(fleet)
        index = next(i for i, leaf in enumerate(leaves) if (leaf.shard, leaf.interval) == (shard, interval))
        return fleet, compute_fleet_proof(leaves, index, record)

    def roots(self) -> list[FleetRoot]:
        """Every fleet root placed, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT interval, root, count, anchored FROM fleet_roots ORDER BY interval")
            return [FleetRoot(i, bytes(r), c, bool(a)) for i, r, c, a in rows.fetchall()]

    def pending(self) -> int:
        """Shard roots handed and not yet placed in a fleet root."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM shard_roots WHERE fleet IS NULL").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _with_empty(shards: int, interval: int, placed: list[ShardRoot]) -> list[ShardRoot]:
    """The tree's leaves: the placed roots in (shard, interval) order, (k, interval, EMPTY_ROOT, 0) for
    each shard k with none."""
    present = {leaf.shard for leaf in placed}
    leaves = placed + [ShardRoot(k, interval, EMPTY_ROOT, 0) for k in range(shards) if k not in present]
    return sorted(leaves, key=lambda leaf: (leaf.shard, leaf.interval))
