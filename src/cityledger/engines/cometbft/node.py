"""The CometBFT engine: the app in this process behind the ABCI server, `cometbft node` beside it.

CometEngine implements app/abc.Engine, the surface the solo engine offers too, so the REST API and
the SDK work unchanged: a submitted tx goes to CometBFT's mempool through its RPC, and CometBFT, not
this process, decides the blocks. node/ assembles it into a node (`cityledger up --engine cometbft`
and the app process of a testnet node); this module knows nothing of the API or of node homes.

With manage_cometbft=False the engine only serves the app over ABCI and talks to a `cometbft node`
that someone else runs (the app process of a testnet node). For networks of several nodes on one
machine see testnet.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import subprocess
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx
import uvloop

from cityledger.app.abc import CommitVotes, Engine, Submitted, TxResult
from cityledger.app.application import CityApp
from cityledger.core.errors import ERR_DUPLICATE, ERR_MEMPOOL_FULL, ERR_TOO_LARGE
from cityledger.engines.cometbft.abci_server import AbciServer
from cityledger.engines.cometbft.rpc import ChainStatus, RpcClient, RpcError
from cityledger.engines.cometbft.setup import (
    DEFAULT_VALIDATOR_POWER,
    LOOPBACK,
    ConsensusTimeouts,
    NodeIdentity,
    NodePorts,
    compute_genesis,
    find_cometbft,
    init_cometbft_home,
    read_genesis,
    read_identity,
    set_persistent_peers,
    write_genesis,
)
from cityledger.engines.cometbft.stateless import StatelessChecks
from cityledger.engines.solo.verifier import default_workers

log = logging.getLogger("cityledger.cometbft")
T = TypeVar("T")

DEFAULT_PORTS = NodePorts(rpc=26657, p2p=26656, abci=26658)
PREPARED_FILE = "cityledger.json"  # in the CometBFT home: which genesis it was prepared for
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
MAX_BATCH_TXS = 10_000
MAX_ADMITTED_TXS = 200_000
CHECK_TX_TIMEOUT_S = 30
MAX_REASON_LOG_CHARS = 2000  # of cometbft.log, in the reason a dead node gives
# CometBFT's RPC errors for txs its mempool refuses before CheckTx, as the ledger's stable errors.
_MEMPOOL_ERRORS = (("already exists in cache", ERR_DUPLICATE), ("mempool is full", ERR_MEMPOOL_FULL),
                   ("tx too large", ERR_TOO_LARGE))


class CometEngineError(RuntimeError):
    """The CometBFT node could not be prepared, started or reached."""


def compute_genesis_validators(app_state: dict, own_pub_key: bytes) -> list[tuple[str, bytes, int]]:
    """The genesis validators: app_state.governance.validators, or this node alone if it lists none."""
    listed = app_state.get("governance", {}).get("validators", [])
    if not listed:
        return [("validator0", own_pub_key, DEFAULT_VALIDATOR_POWER)]
    return [(f"validator{i}", bytes.fromhex(v["pub_key"]), int(v.get("power", DEFAULT_VALIDATOR_POWER)))
            for i, v in enumerate(listed)]


def compute_rejection(error: RpcError) -> TxResult:
    """A TxResult for a tx CometBFT's mempool refused before CheckTx; other RPC errors propagate."""
    for text, kind in _MEMPOOL_ERRORS:
        if text in str(error):
            exc = kind(f"tx: refused by CometBFT's mempool: {error}", "tx")
            return TxResult(code=exc.code, codespace=exc.codespace, log=exc.message)
    raise error


class _LoopThread:
    """An asyncio loop on a daemon thread, to run the ABCI server beside synchronous callers."""

    def __init__(self) -> None:
        # uvloop (libuv) runs the ABCI sockets' callbacks in C: about 4 % less app CPU per tx than
        # asyncio's own loop, measured with 4 validators (docs/BENCHMARKS.md).
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="abci-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class AdmittedTxs:
    """The txs this node's app admitted to CometBFT's mempool and has not seen committed yet.

    A tx submitted and accepted reads as pending (CometEngine.is_pending) until the block holding
    it is committed, instead of unknown. CometBFT may still drop a tx
    (a full mempool, a peer's conflicting tx), so at most MAX_ADMITTED_TXS are remembered, oldest
    forgotten first. The hooks run on the ABCI loop thread, contains() on the API's threads.
    """

    def __init__(self) -> None:
        self._ids: OrderedDict[bytes, None] = OrderedDict()
        self._in_block: list[bytes] = []
        self._lock = threading.Lock()

    def on_check_tx(self, tx_id: bytes, ok: bool, recheck: bool) -> None:
        with self._lock:
            if ok and not recheck:
                self._ids[tx_id] = None
                if len(self._ids) > MAX_ADMITTED_TXS:
                    self._ids.popitem(last=False)
            elif not ok and recheck:  # CometBFT evicts a tx that fails its recheck
                self._ids.pop(tx_id, None)

    def on_finalize_block(self, tx_ids: list[bytes]) -> None:
        self._in_block = tx_ids

    def on_commit(self) -> None:
        with self._lock:
            for tx_id in self._in_block:
                self._ids.pop(tx_id, None)
        self._in_block = []

    def contains(self, tx_id: bytes) -> bool:
        with self._lock:
            return tx_id in self._ids


class CometEngine(Engine):
    """Runs an app as one CometBFT node: prepare() once, then start() and stop()."""

    name = "cometbft"

    def __init__(self, app: CityApp, home: Path, ports: NodePorts = DEFAULT_PORTS,
                 timeouts: ConsensusTimeouts | None = None, log_level: str = "*:error,state:info",
                 manage_cometbft: bool = True, abci_address: str | None = None, track_txs: bool = True,
                 verify_workers: int | None = None) -> None:
        """manage_cometbft=False: start() and stop() serve the app only; `cometbft node` runs elsewhere.

        abci_address (tcp://host:port or unix:///path) overrides the ABCI port of `ports`.
        track_txs=False: nothing submits through this engine (an app process without the API), so
        the CheckTx and FinalizeBlock hooks that serve submitters are left out of the hot path.
        verify_workers: verifier processes for the stateless checks of CheckTx batches and unseen
        block txs (stateless.py); None: one per core (default_workers()), 0: the app checks all.
        """
        self.app = app
        self.home = Path(home)
        self.ports = ports
        self.timeouts = timeouts or ConsensusTimeouts()
        self.log_level = log_level
        self.manage_cometbft = manage_cometbft
        self.blocks_committed = 0  # by this process (the API's metrics read these two)
        self.txs_committed = 0
        self._block_txs = 0
        self._committed = threading.Condition()
        self._waiters: dict[bytes, list[Future]] = {}
        self._waiters_lock = threading.Lock()
        workers = default_workers() if verify_workers is None else verify_workers
        self.stateless = StatelessChecks(app, workers) if workers > 0 else None
        self._server = AbciServer(app, abci_address or f"tcp://{LOOPBACK}:{ports.abci}", after_commit=self._on_commit,
                                  after_check_tx=self._on_check_tx if track_txs else None,
                                  after_finalize_block=self._on_finalize_block if track_txs else None,
                                  stateless=self.stateless)
        self._loop: _LoopThread | None = None
        self._process: subprocess.Popen | None = None
        self._stopped_with: tuple[BaseException | None] | None = None  # fatal_error() when stop() began
        self._rpc = RpcClient(f"http://{LOOPBACK}:{ports.rpc}")
        self.mempool = AdmittedTxs()

    # -- set-up ------------------------------------------------------------------------------------

    def prepare(self, chain_id: str, app_state: dict, validator_seed: bytes | None = None,
                initial_height: int = 1, genesis_time_ns: int | None = None,
                peers: tuple[str, ...] = ()) -> NodeIdentity:
        """Initialise the CometBFT home for this genesis, once; the same genesis again is a no-op.

        validator_seed makes the node's own Ed25519 key its consensus key. The genesis validators
        are app_state.governance.validators, or this node alone (then added to app_state too).
        """
        identity = init_cometbft_home(self.home, chain_id, self.ports, self.timeouts, validator_seed, self.log_level)
        validators = compute_genesis_validators(app_state, identity.validator_pub_key)
        governance = dict(app_state.get("governance", {}))
        governance["validators"] = [{"pub_key": pub.hex(), "power": power} for _, pub, power in validators]
        state = {**app_state, "governance": governance}
        fingerprint = hashlib.sha256(json.dumps([chain_id, state], sort_keys=True).encode()).hexdigest()
        marker = self.home / PREPARED_FILE
        if marker.exists():
            prepared = json.loads(marker.read_text())
            if prepared["genesis"] != fingerprint:
                raise CometEngineError(f"{self.home}: prepared for another genesis (chain {prepared['chain_id']!r});"
                                       " use a new home or remove this one")
        else:
            genesis = compute_genesis(read_genesis(self.home), chain_id, genesis_time_ns or time.time_ns(),
                                      initial_height, validators, state)
            write_genesis([self.home], genesis, state)
            marker.write_text(json.dumps({"chain_id": chain_id, "genesis": fingerprint}) + "\n")
        if peers:
            set_persistent_peers(self.home, list(peers))
        return read_identity(self.home)

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the app over ABCI, start `cometbft node` and wait until its RPC answers."""
        if self.manage_cometbft and not (self.home / PREPARED_FILE).exists():
            raise CometEngineError(f"{self.home}: not prepared; call prepare() first")
        if self.stateless is not None:
            self.stateless.start()
        self._loop = _LoopThread()
        self._loop.run(self._server.start(), timeout_s=10)
        if not self.manage_cometbft:
            return
        log_file = open(self.home / "cometbft.log", "ab")
        try:
            self._process = subprocess.Popen([str(find_cometbft()), "node", "--home", str(self.home)],
                                             stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log_file.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_running()
            try:
                self._rpc.status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise CometEngineError(f"cometbft RPC on port {self.ports.rpc} did not answer within {START_TIMEOUT_S}s")

    def check_running(self) -> None:
        """Raise CometEngineError if CometBFT has exited or the app has failed."""
        error = self.fatal_error()
        if error is not None:
            raise error

    def fatal_error(self) -> BaseException | None:
        """Why this node stopped for good: the app failed, or CometBFT exited (None while both run).

        After stop() it is what it was when stop() began: stopping CometBFT is no failure.
        """
        if self._stopped_with is not None:
            return self._stopped_with[0]
        return self._compute_fatal_error()

    def _compute_fatal_error(self) -> BaseException | None:
        if self._server.fatal_error is not None:
            return CometEngineError(f"the app failed: {self._server.fatal_error!r}")
        if self._process is not None and self._process.poll() is not None:
            return CometEngineError(f"cometbft exited with code {self._process.returncode}; see "
                                    f"{self.home / 'cometbft.log'}:\n{self.log_tail(MAX_REASON_LOG_CHARS)}")
        if self._server.stop_reason is not None:
            return CometEngineError(self._server.stop_reason)
        return None

    def stop(self) -> None:
        """Stop CometBFT (SIGTERM, then SIGKILL after STOP_TIMEOUT_S), then the ABCI server."""
        if self._stopped_with is None:
            self._stopped_with = (self._compute_fatal_error(),)
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._loop is not None:
            self._loop.run(self._server.close(), timeout_s=STOP_TIMEOUT_S)
            self._loop.close()
            self._loop = None
        if self.stateless is not None:
            self.stateless.stop()
        self._rpc.close()
        with self._committed:
            self._committed.notify_all()

    def log_tail(self, max_chars: int = 4000) -> str:
        path = self.home / "cometbft.log"
        return path.read_text(errors="replace")[-max_chars:] if path.exists() else ""

    # -- the ABCI loop thread ----------------------------------------------------------------------

    def run_in_app(self, function: Callable[..., T], *args: Any) -> T:
        """Run function(*args) on the ABCI loop thread, serialised with CometBFT's ABCI calls."""
        if self._loop is None:
            return function(*args)
        return self._loop.run(self._server.call_app(function, *args), timeout_s=STOP_TIMEOUT_S)

    @property
    def last_block_ms(self) -> float:  # type: ignore[override]
        """FinalizeBlock to Commit of the last block, as the ABCI server timed it."""
        return self._server.handler.last_block_ms

    def recent_commits(self, count: int) -> list[CommitVotes]:
        """The votes of the newest `count` commits FinalizeBlock carried since this process started, oldest first."""
        handler = self._server.handler
        with handler.commits_lock:
            return list(handler.commits)[-count:] if count > 0 else []

    def _on_finalize_block(self, txs: list[bytes]) -> None:
        self.mempool.on_finalize_block([hashlib.sha256(tx).digest() for tx in txs])
        self._block_txs = len(txs)

    def _on_commit(self) -> None:
        self.mempool.on_commit()
        self.blocks_committed += 1
        self.txs_committed += self._block_txs
        with self._committed:
            self._committed.notify_all()

    # -- submission --------------------------------------------------------------------------------

    def submit(self, raw: bytes) -> Submitted:
        """Hand a tx to CometBFT's mempool and return its CheckTx result."""
        return self.submit_batch([raw])[0]

    def submit_batch(self, raws: list[bytes]) -> list[Submitted]:
        """Hand many txs to CometBFT's mempool; their CheckTx results in order.

        broadcast_tx_sync would cost one ABCI flush interval (20 ms in CometBFT's socket client) per
        tx, since CometBFT runs a JSON-RPC batch sequentially; so the txs go in as one
        broadcast_tx_async batch and their CheckTx results are taken from the ABCI server as the
        app answers them.
        """
        if len(raws) > MAX_BATCH_TXS:
            raise ValueError(f"txs: expected at most {MAX_BATCH_TXS} txs in a batch, got {len(raws)}")
        tx_ids = [hashlib.sha256(raw).digest() for raw in raws]
        futures = [self._expect_check_tx(tx_id) for tx_id in tx_ids]
        try:
            answers = self._rpc.batch("broadcast_tx_async", [{"tx": base64.b64encode(r).decode()} for r in raws])
        except Exception:
            for tx_id, future in zip(tx_ids, futures):
                self._forget_check_tx(tx_id, future)
            raise
        out = []
        deadline = time.monotonic() + CHECK_TX_TIMEOUT_S
        for tx_id, future, answer in zip(tx_ids, futures, answers):
            if isinstance(answer, RpcError):
                self._forget_check_tx(tx_id, future)
                out.append(Submitted(tx_id, compute_rejection(answer)))
                continue
            try:
                out.append(Submitted(tx_id, future.result(timeout=max(0.0, deadline - time.monotonic()))))
            except FutureTimeout:
                self._forget_check_tx(tx_id, future)
                raise CometEngineError(f"tx {tx_id.hex()}: no CheckTx within {CHECK_TX_TIMEOUT_S}s") from None
        return out

    def _expect_check_tx(self, tx_id: bytes) -> Future:
        future: Future = Future()
        with self._waiters_lock:
            self._waiters.setdefault(tx_id, []).append(future)
        return future

    def _forget_check_tx(self, tx_id: bytes, future: Future) -> None:
        with self._waiters_lock:
            waiting = self._waiters.get(tx_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(tx_id, None)

    def _on_check_tx(self, tx: bytes, result: TxResult, recheck: bool) -> None:
        """Runs on the ABCI loop thread after each CheckTx: hands a new tx's result to its submitter."""
        tx_id = hashlib.sha256(tx).digest()
        self.mempool.on_check_tx(tx_id, result.ok, recheck)
        if recheck or not self._waiters:
            return
        with self._waiters_lock:
            waiting = self._waiters.pop(tx_id, [])
        for future in waiting:
            future.set_result(result)

    def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> tuple[int, int] | None:
        """Block until this node's app has committed the tx: (height, index), or None on timeout."""
        store = self.app.store
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.blocks_committed
            found = self.run_in_app(store.find_tx, tx_id)
            left = deadline - time.monotonic()
            if found is not None or left <= 0:
                return found
            with self._committed:
                if self.blocks_committed == seen:
                    self._committed.wait(left)

    def pending_count(self) -> int:
        """Txs in CometBFT's mempool (its RPC's num_unconfirmed_txs)."""
        return int(self._rpc.call("num_unconfirmed_txs")["total"])

    def pending_bytes(self) -> int:
        """Bytes in CometBFT's mempool (0 if its RPC does not answer)."""
        try:
            return int(self._rpc.call("num_unconfirmed_txs")["total_bytes"])
        except (httpx.HTTPError, RpcError, KeyError, ValueError):
            return 0

    def is_pending(self, tx_id: bytes) -> bool:
        """True while a tx this node's app admitted has not been seen committed."""
        return self.mempool.contains(tx_id)

    def pending_nonce(self, address: bytes) -> int:
        """The account's next nonce after its txs admitted here (the app's check state)."""
        return self.run_in_app(self.app.get_pending_nonce, address)

    def status(self) -> ChainStatus:
        """CometBFT's view: height, app hash, catching up, voting power."""
        return self._rpc.status()


# -- what the REST API serves -------------------------------------------------------------------

class StateMismatchError(RuntimeError):
    """The app's state on disk does not hash to the app hash it committed: it was tampered with."""


def verify_committed_state(store) -> None:
    """Raise StateMismatchError unless the flat state and the state tree both give the committed app hash.

    Reads the whole state table once (a second or so per hundred thousand keys). It catches a
    store edited behind the ledger's back before CometBFT hands the node another block: such a
    node would otherwise serve wrong reads and, at the next block touching the edited keys, compute
    an app hash the rest of the network does not.
    """
    height = store.last_height()
    info = store.height_info(height)
    if height == 0 or info is None:
        return
    committed = info.app_hash
    tree_root = store.tree.root_hash(info.root)
    if tree_root != committed:
        raise StateMismatchError(
            f"app hash mismatch at height {height}: the state tree's root is {tree_root.hex().upper()} but "
            f"the committed app hash is {committed.hex().upper()} ({store.path})")
    recomputed = store.recompute_app_hash()
    if recomputed != committed:
        raise StateMismatchError(
            f"app hash mismatch at height {height}: the state on disk hashes to {recomputed.hex().upper()} but "
            f"the committed app hash is {committed.hex().upper()} ({store.path}); the store was changed "
            "outside the ledger or is corrupt: wipe it and let the node resync from its peers")
