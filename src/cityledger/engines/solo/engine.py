"""The solo engine: one node producing blocks in-process from its mempool.

It plays CometBFT's part for a single node: it admits txs through the app's check_tx, reaps the
mempool into blocks at a fixed interval (no empty blocks unless asked), drives finalize_block and
commit, and rechecks what is left. Block time comes from this engine (like a proposer's clock),
never from the app, and is strictly increasing.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ...app import abc
from ...app.application import CityApp
from ...core.encoding import Record, encode
from ...core.errors import TxError
from ...core.hashing import sha256
from ...core.tx import DecodedTx
from .mempool import Mempool, MempoolConfig
from .verifier import FLAG_CHECKED, FLAG_REFUSED, SignatureVerifier, default_workers

log = logging.getLogger("cityledger.solo")

MAX_BATCH_TXS = 10_000
PIPELINE_CHUNK = 500
MIN_PARALLEL_BATCH = 64  # smaller batches are verified in the calling thread, unless heavy:
MIN_PARALLEL_BATCH_BYTES = 16_384  # large txs carry the costly checks (a claim's 3.8 KB proof: 8-20 ms)
CHUNKS_PER_WORKER = 4  # a batch is cut so each worker gets a few chunks: the app admits one while they verify
MAX_COMMIT_TIMES = 10_000
FULL_RECHECK_EVERY = 50


@dataclass
class SoloConfig:
    block_interval_ms: int = 200
    max_block_txs: int = 10_000
    max_block_bytes: int = 16 * 1024 * 1024
    create_empty_blocks: bool = False
    verify_workers: int = field(default_factory=default_workers)  # 0: verify in the calling thread
    mempool: MempoolConfig = field(default_factory=MempoolConfig)


class Header(Record):
    """What a solo block hash commits to."""

    chain_id: str
    height: int
    time_ns: int
    prev_hash: bytes
    last_app_hash: bytes
    data_hash: bytes


Submitted = abc.Submitted


class SoloEngine(abc.Engine):
    """Runs a CityApp as a single-node chain."""

    name = "solo"

    def __init__(self, app: CityApp, config: SoloConfig | None = None) -> None:
        self.app = app
        self.config = config or SoloConfig()
        self.mempool = Mempool(self.config.mempool)
        self._lock = threading.RLock()  # serialises every call into the app
        self._block_lock = threading.Lock()  # one block at a time, including its unlocked write
        self._committed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._verifier = SignatureVerifier(app.router.message_types(), app.chain_id, self.config.verify_workers,
                                           app.stateless_checks())
        self.blocks_committed = 0
        self.txs_committed = 0
        self.last_block_ms = 0.0
        self._failure: BaseException | None = None
        self.commit_times: deque[tuple[int, float]] = deque(maxlen=MAX_COMMIT_TIMES)  # (height, perf_counter)

    # -- submission ------------------------------------------------------------------------------

    def submit(self, raw: bytes) -> Submitted:
        """Check a tx and admit it to the mempool."""
        tx_id = sha256(raw)
        with self._lock:
            return self._admit(tx_id, raw)

    def submit_batch(self, raws: list[bytes]) -> list[Submitted]:
        """Check many txs: signatures and the modules' stateless checks (a claim's proof) run in
        worker processes, state checks here, overlapped."""
        if len(raws) > MAX_BATCH_TXS:
            raise ValueError(f"txs: expected at most {MAX_BATCH_TXS} txs in a batch, got {len(raws)}")
        light = len(raws) < MIN_PARALLEL_BATCH and sum(map(len, raws)) < MIN_PARALLEL_BATCH_BYTES
        if light or self.config.verify_workers == 0:
            with self._lock:
                return [self._admit(sha256(raw), raw) for raw in raws]
        size = min(PIPELINE_CHUNK, -(-len(raws) // (self._verifier.workers() * CHUNKS_PER_WORKER)))
        chunks = [raws[i:i + size] for i in range(0, len(raws), size)]
        out = []
        for chunk, flags in zip(chunks, self._verifier.verify(chunks)):
            with self._lock:
                for raw, flag in zip(chunk, flags):
                    tx_id = sha256(raw)
                    decoded = None
                    if flag != FLAG_REFUSED:
                        decoded = self.app.precheck(raw, signatures_verified=True, tx_id=tx_id)
                    if flag == FLAG_CHECKED:
                        self.app.note_stateless_checked(decoded)
                    out.append(self._admit(tx_id, raw, decoded))
        return out

    def _admit(self, tx_id: bytes, raw: bytes, decoded: DecodedTx | None = None) -> Submitted:
        """Mempool bounds, then the app's check; admit on success. `decoded` is given when a
        verifier worker has already checked these bytes."""
        try:
            decoded = decoded or self.app.precheck(raw, tx_id=tx_id)
            self.mempool.check_room(tx_id, len(raw), decoded.sender)
        except TxError as exc:
            return Submitted(tx_id, abc.TxResult(code=exc.code, codespace=exc.codespace, log=exc.message))
        result = self.app.check_tx(raw, tx_id=tx_id, decoded=decoded)
        if result.ok:
            self.mempool.add(tx_id, raw, result.sender, self.app.last_height())
        return Submitted(tx_id, result)

    # -- block production ------------------------------------------------------------------------

    def produce_block(self, allow_empty: bool = False) -> int | None:
        """Reap, finalize and commit one block; the new height, or None if nothing to do."""
        with self._block_lock:
            with self._lock:
                reaped = self.mempool.reap(self.config.max_block_txs, self.config.max_block_bytes)
                if not reaped and not (allow_empty or self.config.create_empty_blocks):
                    return None
                started = time.perf_counter()
                height = self.app.store.last_height() + 1
                expired = self._expired(height, {tx_id for tx_id, _ in reaped})
                result = self._finalize(reaped, height)
                # The check state can be kept when the block is the mempool's head and every tx did
                # what its check predicted; a periodic full recheck bounds any drift of checks that
                # depend on the height.
                keep = (not expired and all(r.ok for r in result.tx_results)
                        and height % FULL_RECHECK_EVERY != 0)
                pending = self.app.detach_pending()
                if not keep:
                    self.app.write_block(pending)
                    self._settle(pending, reaped, expired, keep)
            if keep:
                # The check state already holds this block's effects, so admission goes on while
                # SQLite writes the block (it releases the GIL while it works). Checks made in that
                # window still see the previous last height, so a tx that expires at this very
                # block can pass its check and then fail in the next block; that failure ends the
                # kept check state (full recheck), as any misprediction does.
                self.app.write_block(pending)
                with self._lock:
                    self._settle(pending, reaped, expired, keep)
            self.last_block_ms = (time.perf_counter() - started) * 1000
            self.commit_times.append((height, time.perf_counter()))
            self.blocks_committed += 1
            self.txs_committed += len(reaped)
        with self._committed:
            self._committed.notify_all()
        return height

    def _settle(self, pending, reaped: list[tuple[bytes, bytes]], expired: list[bytes], keep: bool) -> None:
        """After the write: drop the block's txs from the mempool; recheck the rest unless kept."""
        self.app.after_write(pending, keep_check_state=keep)
        for tx_id, _ in reaped:
            self.mempool.remove(tx_id)
        if not keep:
            for tx_id in expired:
                self.mempool.remove(tx_id)
            self._recheck()
        elif not len(self.mempool):
            self.app.reset_check_state()

    def _expired(self, height: int, included: set[bytes]) -> list[bytes]:
        return [tx_id for tx_id in self.mempool.older_than(height - self.config.mempool.ttl_blocks)
                if tx_id not in included]

    def _finalize(self, reaped: list[tuple[bytes, bytes]], height: int) -> abc.FinalizeBlockResult:
        store = self.app.store
        info = store.height_info(height - 1)
        prev_time = info.time_ns if info else 0
        time_ns = max(prev_time + 1, time.time_ns())
        txs = [raw for _, raw in reaped]
        data_hash = sha256(b"".join(tx_id for tx_id, _ in reaped))  # the txs' ids: SHA-256 of each
        prev_hash = info.block_hash if info else b""
        header = Header(self.app.chain_id, height, time_ns, prev_hash, info.app_hash if info else b"", data_hash)
        block_hash = sha256(encode(header))
        request = abc.BlockRequest(height=height, time_ns=time_ns, txs=tuple(txs), hash=block_hash)
        return self.app.finalize_block(request)

    def _recheck(self) -> None:
        """Recheck what is left against the new state (after a reset); drop what no longer passes."""
        for tx_id, raw, _ in self.mempool.items():
            if not self.app.check_tx(raw, recheck=True).ok:
                self.mempool.remove(tx_id)

    def run_forever(self) -> None:
        """Produce blocks every interval until stop() is called."""
        interval = self.config.block_interval_ms / 1000
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.produce_block()
            except Exception:  # a crash here is a bug: log it and stop producing rather than corrupt
                log.exception("block production failed; stopping the engine")
                self._failure = sys.exc_info()[1]
                self._stop.set()
                raise
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> None:
        """Start the verifier processes and the block loop (in a background thread)."""
        if self.config.verify_workers:
            self._verifier.start()
        self._thread = threading.Thread(target=self.run_forever, name="solo-blocks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the block loop after the current block."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._verifier.shutdown()

    def run_in_app(self, function, *args):
        """Call function(*args) between blocks and checks."""
        with self._lock:
            return function(*args)

    def pending_count(self) -> int:
        """Txs waiting in the mempool."""
        return len(self.mempool)

    def pending_bytes(self) -> int:
        """Bytes of the txs waiting in the mempool."""
        return self.mempool.size_bytes

    def is_pending(self, tx_id: bytes) -> bool:
        """True while the tx waits in the mempool."""
        return self.mempool.contains(tx_id)

    def pending_nonce(self, address: bytes) -> int:
        """The account's next nonce after its txs in the mempool (the check state)."""
        with self._lock:
            return self.app.get_pending_nonce(address)

    def fatal_error(self) -> BaseException | None:
        """The exception that stopped block production, if one did."""
        return self._failure

    # -- waiting ---------------------------------------------------------------------------------

    def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> tuple[int, int] | None:
        """Block until a tx is committed; (height, index) or None on timeout or if it left the mempool."""
        deadline = time.monotonic() + timeout_s
        with self._committed:
            while True:
                found = self.app.store.find_tx(tx_id)
                if found is not None:
                    return found
                if not self.mempool.contains(tx_id):
                    return self.app.store.find_tx(tx_id)  # committed just now, or dropped
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._committed.wait(left)
