"""Embedded, crash-safe storage on SQLite in WAL mode.

One SQLite transaction per block: the block and its results, the state changes (a flat table of the
latest values, for fast reads), the new state-tree nodes and the stale-node index, and the new
height. SQLite's atomic commit means a node killed at any moment restarts at the last committed
block, never in between. Tree nodes of past heights are kept for `retain_heights` blocks, so queries
with proofs work against any recent height; older nodes are pruned through the stale-node index
(Jellyfish-style: a node replaced at height h is deleted once h falls out of the window).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from .encoding import Record, decoder, encode
from .tree import NodeKey, SparseMerkleTree, TreeUpdate, compute_root

MAX_CACHE_ENTRIES = 2_000_000
MAX_NODE_CACHE_ENTRIES = 200_000
DEFAULT_RETAIN_HEIGHTS = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS heights (
    height INTEGER PRIMARY KEY, app_hash BLOB NOT NULL, root_version INTEGER, root_path BLOB,
    time_ns INTEGER NOT NULL, block_hash BLOB NOT NULL, n_txs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (tx_id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (version INTEGER NOT NULL, path BLOB NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (version, path)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (height INTEGER NOT NULL, format INTEGER NOT NULL, chunks INTEGER NOT NULL,
    hash BLOB NOT NULL, metadata BLOB NOT NULL, PRIMARY KEY (height, format));
CREATE TABLE IF NOT EXISTS snapshot_chunks (height INTEGER NOT NULL, format INTEGER NOT NULL, idx INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (height, format, idx));
CREATE TABLE IF NOT EXISTS stale (stale_since INTEGER PRIMARY KEY, node_keys BLOB NOT NULL);
"""


_MISSING = object()


class ResultRecord(Record):
    """A tx result as stored: code, codespace, log, data and events as [type, [[k, v], …]]."""

    code: int
    codespace: str
    log: str
    data: bytes
    events: list[tuple[str, list[tuple[str, str]]]]


class BlockRecord(Record):
    """A committed block as stored."""

    height: int
    time_ns: int
    hash: bytes
    app_hash: bytes
    proposer: bytes
    txs: list[bytes]
    results: list[ResultRecord]
    events: list[tuple[str, list[tuple[str, str]]]]


_BLOCK = decoder(BlockRecord)
_NODE_KEYS = decoder(list[tuple[int, bytes]])


class HeightInfo(Record):
    """What the store knows about a committed height."""

    height: int
    app_hash: bytes
    root: NodeKey | None
    time_ns: int
    block_hash: bytes
    n_txs: int


class Store:
    """The node's database: one writer (the engine), any number of reader threads."""

    def __init__(self, path: Path | str, retain_heights: int = DEFAULT_RETAIN_HEIGHTS,
                 sync_every_block: bool = True) -> None:
        """sync_every_block=False leaves each block's fsync to SQLite's WAL checkpoints
        (`synchronous=NORMAL`): a killed process still loses nothing, but a power cut may lose the
        last blocks. Only for an engine that can replay them: CometBFT keeps every block in its
        own fsynced store and replays what the app lacks at its handshake."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self.retain_heights = retain_heights
        self._synchronous = "FULL" if sync_every_block else "NORMAL"
        self._local = threading.local()
        self._write_lock = threading.Lock()
        # Readers fill the latest-state cache on a miss while a block may be committing in another
        # thread. A value read from SQLite just before a commit must not land in the cache after the
        # commit's own update of that key: _epoch is odd while a block is being written and moves
        # on at its start and end; a reader caches only if it stayed even and unchanged.
        self._fill_lock = threading.Lock()
        self._epoch = 0
        self._cache: dict[bytes, bytes | None] = {}
        self._node_cache: dict[NodeKey, bytes] = {}
        self._last_height: int | None = None
        db = self._db()
        db.executescript(_SCHEMA)
        self.tree = SparseMerkleTree(self)

    # -- connections ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.execute("PRAGMA cache_size=-65536")
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- meta ------------------------------------------------------------------------------------

    def get_meta(self, name: str) -> bytes | None:
        """A metadata value (chain id, genesis hash, …)."""
        row = self._db().execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else row[0]

    def last_height(self) -> int:
        """The last committed height (0 before the first block)."""
        if self._last_height is None:
            row = self._db().execute("SELECT MAX(height) FROM heights").fetchone()
            self._last_height = row[0] or 0
        return self._last_height

    def height_info(self, height: int) -> HeightInfo | None:
        """App hash, tree root and header facts of a committed height."""
        row = self._db().execute(
            "SELECT height, app_hash, root_version, root_path, time_ns, block_hash, n_txs FROM heights WHERE height=?",
            (height,)).fetchone()
        if row is None:
            return None
        root = None if row[2] is None else NodeKey(row[2], row[3])
        return HeightInfo(row[0], row[1], root, row[4], row[5], row[6])

    def oldest_retained_height(self) -> int:
        """The oldest height whose state can still be queried with proofs."""
        row = self._db().execute("SELECT MIN(height) FROM heights").fetchone()
        return max(row[0] or 0, self.last_height() - self.retain_heights + 1)

    # -- state -----------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The latest committed value of a key."""
        cache = self._cache
        value = cache.get(key, _MISSING)
        if value is not _MISSING:
            return value
        epoch = self._epoch
        row = self._db().execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        value = None if row is None else row[0]
        with self._fill_lock:
            if epoch == self._epoch and not epoch & 1 and len(cache) < MAX_CACHE_ENTRIES:
                cache[key] = value
        return value

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Latest committed (key, value) pairs under a prefix, in key order."""
        upper = _prefix_upper_bound(prefix)
        if upper is None:
            rows = self._db().execute("SELECT key, value FROM state WHERE key>=? ORDER BY key", (prefix,))
        else:
            rows = self._db().execute("SELECT key, value FROM state WHERE key>=? AND key<? ORDER BY key",
                                      (prefix, upper))
        yield from rows

    def get_node(self, key: NodeKey) -> bytes | None:
        """A state-tree node (the tree's NodeReader)."""
        cached = self._node_cache.get(key)
        if cached is not None:
            return cached
        row = self._db().execute("SELECT data FROM nodes WHERE version=? AND path=?", (key.version, key.path)).fetchone()
        if row is None:
            return None
        if len(self._node_cache) >= MAX_NODE_CACHE_ENTRIES:
            self._node_cache.clear()
        self._node_cache[key] = row[0]
        return row[0]

    def get_at(self, key: bytes, height: int):
        """(value, proof, app_hash) of a key at a retained height."""
        info = self.height_info(height)
        if info is None:
            raise LookupError(f"height: {height} is not a committed height")
        if height < self.oldest_retained_height():
            raise LookupError(f"height: {height} is older than the retained window "
                              f"(oldest {self.oldest_retained_height()})")
        value, proof = self.tree.get_with_proof(info.root, key)
        return value, proof, info.app_hash

    def recompute_app_hash(self) -> bytes:
        """The state-tree root recomputed from scratch from the flat state table."""
        rows = self._db().execute("SELECT key, value FROM state")
        return compute_root(dict(rows))

    # -- blocks ----------------------------------------------------------------------------------

    def get_block(self, height: int) -> BlockRecord | None:
        """A committed block with its results."""
        row = self._db().execute("SELECT data FROM blocks WHERE height=?", (height,)).fetchone()
        return None if row is None else _BLOCK.decode_lenient(row[0])

    def find_tx(self, tx_id: bytes) -> tuple[int, int] | None:
        """(height, index) of a committed tx."""
        row = self._db().execute("SELECT height, idx FROM txs WHERE tx_id=?", (tx_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    # -- the one write path ----------------------------------------------------------------------

    def commit_block(self, block: BlockRecord, writes: list[tuple[bytes, bytes | None]], tree: TreeUpdate,
                     tx_ids: list[bytes], meta: dict[str, bytes] | None = None) -> None:
        """Persist a block, its state changes and its tree nodes atomically.

        Safe to call while other threads read: they see the previous block until this returns."""
        with self._write_lock:
            with self._fill_lock:
                self._epoch += 1
            try:
                db = self._db()
                db.execute("BEGIN IMMEDIATE")
                try:
                    self._write_block(db, block, writes, tree, tx_ids, meta or {})
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    with self._fill_lock:
                        self._cache.clear()
                    self._last_height = None
                    raise
                with self._fill_lock:
                    cache = self._cache
                    if len(cache) + len(writes) > MAX_CACHE_ENTRIES:
                        cache.clear()
                    cache.update(writes)
                    self._last_height = block.height
            finally:
                with self._fill_lock:
                    self._epoch += 1
        # New nodes are the ones the next block's updates walk through first: keep them hot.
        if len(self._node_cache) + len(tree.new_nodes) > MAX_NODE_CACHE_ENTRIES:
            self._node_cache.clear()
        self._node_cache.update(tree.new_nodes)

    def _write_block(self, db, block, writes, tree, tx_ids, meta) -> None:
        height = block.height
        db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                       [(k, v) for k, v in writes if v is not None])
        db.executemany("DELETE FROM state WHERE key=?", [(k,) for k, v in writes if v is None])
        db.executemany("INSERT OR REPLACE INTO nodes (version, path, data) VALUES (?, ?, ?)",
                       [(k.version, k.path, data) for k, data in tree.new_nodes.items()])
        if tree.stale_nodes:
            # One row per block (not per node): the index is written every block, read once per prune.
            db.execute("INSERT OR REPLACE INTO stale (stale_since, node_keys) VALUES (?, ?)",
                       (height, encode([(k.version, k.path) for k in tree.stale_nodes])))
        db.execute("INSERT INTO blocks (height, data) VALUES (?, ?)", (height, encode(block)))
        db.executemany("INSERT OR IGNORE INTO txs (tx_id, height, idx) VALUES (?, ?, ?)",
                       [(tx_id, height, index) for index, tx_id in enumerate(tx_ids)])
        root = tree.root_key
        db.execute("INSERT INTO heights (height, app_hash, root_version, root_path, time_ns, block_hash, n_txs) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (height, block.app_hash, None if root is None else root.version,
                    None if root is None else root.path, block.time_ns, block.hash, len(block.txs)))
        for name, value in sorted(meta.items()):
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
        self._prune(db, height)

    def _prune(self, db, height: int) -> None:
        cutoff = height - self.retain_heights
        if cutoff <= 0:
            return
        rows = db.execute("SELECT node_keys FROM stale WHERE stale_since<=?", (cutoff,)).fetchall()
        if rows:
            stale = [tuple(key) for (blob,) in rows for key in _NODE_KEYS.decode_lenient(blob)]
            db.executemany("DELETE FROM nodes WHERE version=? AND path=?", stale)
            db.execute("DELETE FROM stale WHERE stale_since<=?", (cutoff,))
            for version, path in stale:
                self._node_cache.pop(NodeKey(version, path), None)

    def set_meta(self, items: dict[str, bytes]) -> None:
        """Write metadata outside a block (genesis)."""
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            for name, value in sorted(items.items()):
                db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))
            db.execute("COMMIT")


    # -- snapshots (state sync) -------------------------------------------------------------------

    def save_snapshot(self, snapshot, chunks: list[bytes], keep: int) -> None:
        """Store a snapshot's chunks and drop all but the newest `keep` snapshots."""
        with self._write_lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)",
                       (snapshot.height, snapshot.format, snapshot.chunks, snapshot.hash, snapshot.metadata))
            db.executemany("INSERT OR REPLACE INTO snapshot_chunks VALUES (?, ?, ?, ?)",
                           [(snapshot.height, snapshot.format, i, chunk) for i, chunk in enumerate(chunks)])
            old = [row[0] for row in db.execute("SELECT height FROM snapshots ORDER BY height DESC").fetchall()[keep:]]
            for height in old:
                db.execute("DELETE FROM snapshots WHERE height=?", (height,))
                db.execute("DELETE FROM snapshot_chunks WHERE height=?", (height,))
            db.execute("COMMIT")

    def list_snapshots(self) -> list[tuple[int, int, int, bytes, bytes]]:
        """(height, format, chunks, hash, metadata) of stored snapshots, newest first."""
        return self._db().execute(
            "SELECT height, format, chunks, hash, metadata FROM snapshots ORDER BY height DESC").fetchall()

    def load_snapshot_chunk(self, height: int, format: int, index: int) -> bytes:
        """One chunk of a stored snapshot (empty if unknown)."""
        row = self._db().execute("SELECT data FROM snapshot_chunks WHERE height=? AND format=? AND idx=?",
                                 (height, format, index)).fetchone()
        return b"" if row is None else row[0]

    def restore_state(self, height: int, items: list[tuple[bytes, bytes]], tree: TreeUpdate) -> None:
        """Install a verified snapshot's state as committed height `height` (state sync)."""
        block = BlockRecord(height, 0, b"", tree.root_hash, b"", [], [], [])
        self.commit_block(block, list(items), tree, [], {"state_synced_at": str(height).encode()})


def _prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string with this prefix (None if unbounded)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))
