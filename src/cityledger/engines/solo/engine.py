"""The solo engine: one node producing blocks in-process from its mempool.

It plays CometBFT's part for a single node: it admits txs through the app's check_tx, reaps the
mempool into blocks at a fixed interval (no empty blocks unless asked), drives finalize_block and
commit, and rechecks what is left. Block time comes from this engine (like a proposer's clock),
never from the app, and is strictly increasing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ...app import abc
from ...app.application import CityApp
from ...core.encoding import Record, encode
from ...core.errors import TxError
from ...core.hashing import sha256
from .mempool import Mempool, MempoolConfig

log = logging.getLogger("cityledger.solo")

MAX_BATCH_TXS = 10_000
PIPELINE_CHUNK = 256
MAX_COMMIT_TIMES = 10_000


@dataclass
class SoloConfig:
    block_interval_ms: int = 200
    max_block_txs: int = 10_000
    max_block_bytes: int = 16 * 1024 * 1024
    create_empty_blocks: bool = False
    verify_threads: int = 2
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
        self._committed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max(1, self.config.verify_threads), thread_name_prefix="verify")
        self.blocks_committed = 0
        self.txs_committed = 0
        self.last_block_ms = 0.0
        self.commit_times: deque[tuple[int, float]] = deque(maxlen=MAX_COMMIT_TIMES)  # (height, perf_counter)

    # -- submission ------------------------------------------------------------------------------

    def submit(self, raw: bytes) -> Submitted:
        """Check a tx and admit it to the mempool."""
        tx_id = sha256(raw)
        with self._lock:
            return self._admit(tx_id, raw)

    def submit_batch(self, raws: list[bytes]) -> list[Submitted]:
        """Check many txs: signatures verified in parallel threads, state checks in order."""
        if len(raws) > MAX_BATCH_TXS:
            raise ValueError(f"txs: expected at most {MAX_BATCH_TXS} txs in a batch, got {len(raws)}")
        # Signatures are verified by the pool (libsodium releases the GIL) while this thread runs
        # the ordered state checks of the chunks already verified: the two overlap.
        chunks = [raws[i:i + PIPELINE_CHUNK] for i in range(0, len(raws), PIPELINE_CHUNK)]
        futures = [self._pool.submit(self._precheck_quietly, chunk) for chunk in chunks]
        out = []
        for chunk, future in zip(chunks, futures):
            future.result()
            with self._lock:
                for raw in chunk:
                    out.append(self._admit(sha256(raw), raw))
        return out

    def _precheck_quietly(self, raws: list[bytes]) -> None:
        for raw in raws:
            try:
                self.app.precheck(raw)
            except TxError:
                pass  # reported with its error by check_tx

    def _admit(self, tx_id: bytes, raw: bytes) -> Submitted:
        try:
            self.mempool.check_room(tx_id, len(raw), None)
        except TxError as exc:
            return Submitted(tx_id, abc.TxResult(code=exc.code, codespace=exc.codespace, log=exc.message))
        result = self._quota_checked(tx_id, raw)
        return Submitted(tx_id, result)

    def _quota_checked(self, tx_id: bytes, raw: bytes) -> abc.TxResult:
        try:
            decoded = self.app.precheck(raw)
            self.mempool.check_room(tx_id, len(raw), decoded.sender)
        except TxError as exc:
            return abc.TxResult(code=exc.code, codespace=exc.codespace, log=exc.message)
        result = self.app.check_tx(raw)
        if result.ok:
            self.mempool.add(tx_id, raw, result.sender, self.app.last_height())
        return result

    # -- block production ------------------------------------------------------------------------

    def produce_block(self, allow_empty: bool = False) -> int | None:
        """Reap, finalize and commit one block; the new height, or None if nothing to do."""
        with self._lock:
            reaped = self.mempool.reap(self.config.max_block_txs, self.config.max_block_bytes)
            if not reaped and not (allow_empty or self.config.create_empty_blocks):
                return None
            started = time.perf_counter()
            height = self._commit_block([raw for _, raw in reaped])
            for tx_id, _ in reaped:
                self.mempool.remove(tx_id)
            self._recheck(height)
            self.last_block_ms = (time.perf_counter() - started) * 1000
            self.commit_times.append((height, time.perf_counter()))
            self.blocks_committed += 1
            self.txs_committed += len(reaped)
        with self._committed:
            self._committed.notify_all()
        return height

    def _commit_block(self, txs: list[bytes]) -> int:
        store = self.app.store
        last = store.last_height()
        info = store.height_info(last)
        prev_time = info.time_ns if info else 0
        time_ns = max(prev_time + 1, time.time_ns())
        height = last + 1
        data_hash = sha256(b"".join(sha256(tx) for tx in txs))
        prev_hash = info.block_hash if info else b""
        header = Header(self.app.chain_id, height, time_ns, prev_hash, info.app_hash if info else b"", data_hash)
        block_hash = sha256(encode(header))
        request = abc.BlockRequest(height=height, time_ns=time_ns, txs=tuple(txs), hash=block_hash)
        self.app.finalize_block(request)
        self.app.commit()
        return height

    def _recheck(self, height: int) -> None:
        """Recheck what is left against the new state; drop failures and txs past their TTL."""
        ttl = self.config.mempool.ttl_blocks
        for tx_id, raw, added in self.mempool.items():
            if height - added > ttl or not self.app.check_tx(raw, recheck=True).ok:
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
                self._stop.set()
                raise
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    def start(self) -> None:
        """Start the block loop in a background thread."""
        self._thread = threading.Thread(target=self.run_forever, name="solo-blocks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the block loop after the current block."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=False)

    def run_in_app(self, function, *args):
        """Call function(*args) between blocks and checks."""
        with self._lock:
            return function(*args)

    def pending_count(self) -> int:
        """Txs waiting in the mempool."""
        return len(self.mempool)

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
