"""CityApp: the deterministic state machine behind both engines.

check_tx admits a transaction to the mempool against the check state (committed state plus the
mempool's own pending effects); finalize_block executes a block against a block overlay, each tx in
its own journal, and computes the app hash as the root of the state tree with the block's changes;
commit persists all of it in one atomic storage transaction.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..core.accounts import EMPTY_VALUE, account_key, get_nonce, pack_account, unpack_account
from ..core.errors import ERR_EXPIRED, ERR_HANDLER_FAILED, ERR_NONCE_GAP, ERR_NONCE_REPLAY, TxError, is_node_failure
from ..core.hashing import sha256
from ..core.state import Overlay
from ..core.storage import BlockRecord, ResultRecord, Store
from ..core.tree import NodeKey, TreeUpdate
from ..core.tx import MAX_TX_BYTES, DecodedTx, TxCodec, verify_tx_signatures
from ..modules.base import Context, Module, Params, compute_param_tables
from . import abc, genesis, queries, quotas, snapshots
from .router import ActionRouter, MessageRouter

log = logging.getLogger("cityledger.app")

APP_VERSION = 1
# The signature cache holds decoded, verified txs that check_tx admitted, so that the block which
# includes them need not verify them again. It holds admitted txs only (a rejected tx would let
# anyone fill it for free) and is bounded both by count and by an estimate of its bytes: each
# entry counts its encoded size plus VERIFIED_ENTRY_OVERHEAD_BYTES for the decoded objects
# (measured: a 167-byte transfer decodes to about 950 bytes of Python objects).
MAX_VERIFIED_CACHE = 100_000  # entries: the solo mempool's default max_txs
MAX_VERIFIED_CACHE_BYTES = 128 * 1024 * 1024
VERIFIED_ENTRY_OVERHEAD_BYTES = 1024


@dataclass
class _Pending:
    """A finalized, not yet committed block."""

    block: BlockRecord
    writes: list[tuple[bytes, bytes | None]]
    tree: TreeUpdate
    tx_ids: list[bytes]


class CityApp(abc.Application):
    """The ledger application."""

    def __init__(self, store: Store, modules: Sequence[Module], chain_id: str, snapshot_interval: int = 0) -> None:
        self.store = store
        self.modules = list(modules)
        self.chain_id = chain_id
        self.router = MessageRouter(self.modules)
        self.actions = ActionRouter(self.modules)
        self.codec = TxCodec(self.router.message_types(), chain_id)
        self._param_specs, self._param_keys = compute_param_tables(self.modules)
        self._verified: OrderedDict[bytes, tuple[DecodedTx, int]] = OrderedDict()  # tx id -> (tx, bytes)
        self._verified_bytes = 0
        self._pending: _Pending | None = None
        self.snapshot_interval = snapshot_interval  # 0: take no state-sync snapshots
        self._restore: snapshots.Restore | None = None
        self._check_state = Overlay(store)
        self._check_params = self.params(self._check_state)
        self._check_windows: quotas.WindowCache = {}  # the check state's window records (app/quotas.py)
        self._quota_reader = next((m.sender_quota for m in self.modules if m.sender_quota is not None), None)
        self._stateless_checks = {kind: check for m in self.modules for kind, check in m.stateless_checks.items()}
        self._stateless_checked = {kind: hook for m in self.modules for kind, hook in m.stateless_checked.items()}

    # -- helpers ---------------------------------------------------------------------------------

    def params(self, state) -> Params:
        """Every module's parameters as seen through a state layer."""
        return Params(state, self._param_specs, self._param_keys)

    def last_height(self) -> int:
        return self.store.last_height()

    def get_pending_nonce(self, address: bytes) -> int:
        """An account's next nonce counting its txs already admitted to the mempool (the check state)."""
        return get_nonce(self._check_state, address)

    def _root(self) -> NodeKey | None:
        info = self.store.height_info(self.store.last_height())
        return None if info is None else info.root

    def precheck(self, raw: bytes, signatures_verified: bool = False, tx_id: bytes | None = None) -> DecodedTx:
        """Decode, validate statelessly and verify signatures; pure, so safe from any thread.
        Raises TxError only (a bug met while decoding becomes tx/16 handler_failed); remembers
        nothing (only check_tx's admission fills the cache).

        `signatures_verified` is for the node's own verifier processes, which have just run every
        one of these checks on these exact bytes; nothing from outside the node may set it."""
        tx_id = tx_id or sha256(raw)
        cached = self._verified.get(tx_id)
        if cached is not None:
            return cached[0]
        try:
            if signatures_verified:
                return self.codec.decode_trusted(raw, tx_id)
            decoded = self.codec.decode(raw, tx_id)
            verify_tx_signatures(decoded)
        except TxError:
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder bug rejects the tx, on every validator alike
            raise _unexpected(exc, "tx", "decoding this tx", tx_id) from exc
        return decoded

    def stateless_checks(self) -> dict[type, Callable[[Any], None]]:
        """The modules' costly checks of a message alone, by message type (module-level functions,
        so an engine's verifier processes can import them by name and run them ahead)."""
        return dict(self._stateless_checks)

    def note_stateless_checked(self, decoded: DecodedTx) -> None:
        """This node's own verifier process ran every stateless check of these exact bytes and
        each passed: the modules may remember it (by content), so check_tx and FinalizeBlock need
        not run the costly part again. Nothing from outside the node may call this."""
        for message in decoded.messages:
            hook = self._stateless_checked.get(type(message))
            if hook is not None:
                hook(message)

    def _remember(self, decoded: DecodedTx, size: int) -> None:
        """Cache an admitted tx, evicting the oldest entries past either bound."""
        if decoded.tx_id in self._verified:
            return
        cost = size + VERIFIED_ENTRY_OVERHEAD_BYTES
        self._verified[decoded.tx_id] = (decoded, cost)
        self._verified_bytes += cost
        while len(self._verified) > MAX_VERIFIED_CACHE or self._verified_bytes > MAX_VERIFIED_CACHE_BYTES:
            self._verified_bytes -= self._verified.popitem(last=False)[1][1]

    def _forget(self, tx_id: bytes) -> None:
        entry = self._verified.pop(tx_id, None)
        if entry is not None:
            self._verified_bytes -= entry[1]

    def verified_cache_size(self) -> tuple[int, int]:
        """(entries, accounted bytes) of the signature cache."""
        return len(self._verified), self._verified_bytes

    def _context(self, state: Overlay, height: int, time_ns: int, decoded: DecodedTx | None = None,
                 params: Params | None = None) -> Context:
        if decoded is None:
            return Context(state, self.chain_id, height, time_ns, params=params or self.params(state),
                           actions=self.actions)
        return Context(state, self.chain_id, height, time_ns, decoded.sender, decoded.tx.body.signer, decoded.tx_id,
                       params=params or self.params(state), actions=self.actions)

    def _authenticate(self, state: Overlay, decoded: DecodedTx, height: int, params: Params,
                      windows: quotas.WindowCache) -> tuple[tuple[bytes, bytes], int]:
        """Nonce, expiry and window-quota checks; on success the sender's nonce advances in `state`
        (a fresh journal over a layer, or the layer itself; `windows` is that layer's window cache).
        Returns that write (key, value) of the sender's account record, so a caller can keep it
        when the messages fail (the record's balance is the one from before the messages), and the
        sender's pending-tx bound (0: none)."""
        body = decoded.tx.body
        if body.expiry_height and height > body.expiry_height:
            raise ERR_EXPIRED(f"body.expiry_height: tx expired at height {body.expiry_height}, "
                              f"now {height}", "body.expiry_height")
        key = account_key(decoded.sender)
        raw = state.get(key)
        expected, balance = EMPTY_VALUE if raw is None else unpack_account(raw)
        if body.nonce < expected:
            raise ERR_NONCE_REPLAY(f"body.nonce: {body.nonce} already used; expected {expected}", "body.nonce")
        if body.nonce > expected:
            raise ERR_NONCE_GAP(f"body.nonce: expected {expected}, got {body.nonce} (out of order)", "body.nonce")
        max_pending = 0
        if self._quota_reader is not None:
            max_pending = quotas.check_window_quota(state, windows, self._quota_reader, params, decoded, height,
                                                     expected)
        bump = (key, pack_account(expected + 1, balance))  # body.nonce < 2**63: no overflow
        state.writes[key] = bump[1]
        return bump, max_pending

    def _run_messages(self, journal: Overlay, decoded: DecodedTx, height: int, time_ns: int,
                      params: Params | None = None, record_events: bool = True) -> Context:
        """Execute all messages against `journal`, the tx's own layer: the caller folds it into
        its parent if this returns, and drops it if a message raises."""
        ctx = self._context(journal, height, time_ns, decoded, params)
        ctx.record_events = record_events
        for index, message in enumerate(decoded.messages):
            try:
                self.router.dispatch(ctx, message)
            except TxError:
                raise
            except Exception as exc:  # noqa: BLE001 - any other failure of a handler is a bug
                tag = type(message).__struct_config__.tag
                raise _unexpected(exc, f"body.messages[{index}]", f"the {tag} handler", decoded.tx_id) from exc
        return ctx

    # -- info / query ----------------------------------------------------------------------------

    def info(self) -> abc.InfoResult:
        height = self.store.last_height()
        info = self.store.height_info(height)
        app_hash = b"" if info is None or height == 0 else info.app_hash
        return abc.InfoResult("cityledger", "0.1.0", APP_VERSION, height, app_hash)

    def query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> abc.QueryResult:
        return queries.run_query(self.store, self.modules, path, data, height, prove)

    # -- mempool ---------------------------------------------------------------------------------

    def check_tx(self, tx: bytes, recheck: bool = False, tx_id: bytes | None = None,
                 decoded: DecodedTx | None = None) -> abc.TxResult:
        """Admission check against the check state. A new tx is executed in full, so a tx that
        would fail (insufficient funds, …) is refused at the door with its error. A recheck
        (after a block, for each tx still pending) repeats only the cheap part — signatures are
        cached, the nonce is re-validated — as Cosmos SDK apps do: the block is authoritative, and
        re-executing every pending tx after every block would cost more than the block itself.
        `decoded` is what this node's engine got from precheck(tx) just before, if it did.
        An admitted tx is remembered in the signature cache; one refused on recheck is forgotten."""
        try:
            decoded = decoded or self.precheck(tx, tx_id=tx_id)
            height = self.store.last_height() + 1
            if recheck:  # the nonce and window writes are the only ones, made only if every check passes
                self._authenticate(self._check_state, decoded, height, self._check_params, self._check_windows)
            else:
                journal = Overlay(self._check_state)
                bump, max_pending = self._authenticate(journal, decoded, height, self._check_params,
                                                       self._check_windows)
                quotas.check_pending_quota(self.store, bump[0], decoded.tx.body.nonce, max_pending)
                self._run_messages(journal, decoded, height, 0, self._check_params, record_events=False)
                self._check_state.writes.update(journal.writes)
        except Exception as exc:  # noqa: BLE001 - TxError, or a bug turned into a rejection
            error = exc if isinstance(exc, TxError) else _unexpected(exc, "tx", "checking this tx", tx_id)
            if recheck:  # it leaves the mempool, so its cache entry is of no further use
                self._forget(tx_id or sha256(tx))
            return abc.TxResult(code=error.code, codespace=error.codespace, log=error.message)
        self._remember(decoded, len(tx))
        return abc.TxResult(sender=decoded.sender, nonce=decoded.nonce, gas_wanted=len(tx))

    # -- consensus -------------------------------------------------------------------------------

    def init_chain(self, request: abc.InitChainRequest) -> abc.InitChainResult:
        result = genesis.run_init_chain(self.store, self.modules, self.chain_id, request, self._context)
        self._reset_check_state()
        return result

    def prepare_proposal(self, request: abc.BlockRequest, max_tx_bytes: int) -> list[bytes]:
        """The mempool's txs in order, within max_tx_bytes, leaving out every tx that
        process_proposal would refuse (undecodable, oversized, wrongly signed): a correct
        proposer's block must pass every correct validator's process_proposal."""
        chosen, total = [], 0
        for tx in request.txs:
            if not self.is_block_tx(tx):
                continue
            if total + len(tx) > max_tx_bytes:
                break  # keep the mempool's order: a later tx of the same sender would fail its nonce
            chosen.append(tx)
            total += len(tx)
        return chosen

    def process_proposal(self, request: abc.BlockRequest) -> bool:
        """Accept a block whose txs all decode and carry valid signatures."""
        return all(self.is_block_tx(tx) for tx in request.txs)

    def is_block_tx(self, tx: bytes) -> bool:
        """True if a tx may stand in a block: it decodes, passes the stateless checks and its
        signatures verify (its messages may still fail: that is the tx's result, not the block's)."""
        if len(tx) > MAX_TX_BYTES:
            return False
        try:
            self.precheck(tx)
        except TxError:
            return False
        return True

    def finalize_block(self, request: abc.BlockRequest) -> abc.FinalizeBlockResult:
        block_state = Overlay(self.store)
        params = self.params(block_state)  # parameter changes take effect from the next tx on
        windows: quotas.WindowCache = {}  # block_state's window records
        results, events, updates, tx_ids = [], [], [], []
        for raw in request.txs:
            tx_id = sha256(raw)
            result, ctx = self._deliver(block_state, windows, raw, tx_id, request.height, request.time_ns, params)
            results.append(result)
            tx_ids.append(tx_id)
            if ctx is not None:
                updates.extend(ctx.validator_updates)
        writes = block_state.sorted_writes()
        tree = self.store.tree.apply(self._root(), request.height, dict(writes))
        stored = [ResultRecord(r.code, r.codespace, r.log, r.data, list(r.events)) for r in results]
        block = BlockRecord(request.height, request.time_ns, request.hash, tree.root_hash, request.proposer_address,
                            list(request.txs), stored, [])
        self._pending = _Pending(block, writes, tree, tx_ids)
        return abc.FinalizeBlockResult(tuple(results), tree.root_hash, tuple(events), tuple(updates))

    def _deliver(self, block_state: Overlay, windows: quotas.WindowCache, raw: bytes, tx_id: bytes, height: int,
                 time_ns: int, params: Params):
        """Execute one tx of a block; auth failures change nothing, message failures keep the nonce bump."""
        journal = Overlay(block_state)
        try:
            decoded = self.precheck(raw, tx_id=tx_id)
            nonce_write, _ = self._authenticate(journal, decoded, height, params, windows)
        except Exception as exc:  # noqa: BLE001 - TxError, or a bug turned into a rejection
            error = exc if isinstance(exc, TxError) else _unexpected(exc, "tx", "checking this tx", tx_id)
            return abc.TxResult(code=error.code, codespace=error.codespace, log=error.message), None
        try:
            ctx = self._run_messages(journal, decoded, height, time_ns, params)
        except TxError as exc:
            block_state.writes[nonce_write[0]] = nonce_write[1]  # replay protection holds for failed txs
            return abc.TxResult(code=exc.code, codespace=exc.codespace, log=exc.message), None
        block_state.writes.update(journal.writes)
        return abc.TxResult(events=tuple(ctx.events), gas_used=len(raw)), ctx

    def commit(self, keep_check_state: bool = False) -> abc.CommitResult:
        """Persist the finalized block. The check state is reset (the engine then rechecks its
        mempool) unless the engine knows the block was its own mempool's head, executed with the
        results check_tx predicted: then the check state already equals the new state plus what
        is left in the mempool, and keeping it saves re-executing every pending tx."""
        pending = self.detach_pending()
        self.write_block(pending)
        self.after_write(pending, keep_check_state)
        return abc.CommitResult(retain_height=0)

    # commit in three steps, for an engine that lets admission go on while the block is written

    def detach_pending(self) -> _Pending:
        """Take the finalized block; write_block then after_write complete its commit."""
        pending = self._pending
        if pending is None:
            raise RuntimeError("commit called without a finalized block")
        self._pending = None
        return pending

    def write_block(self, pending: _Pending) -> None:
        """The slow part of a commit, one atomic SQLite transaction. Other threads may read and
        run check_tx meanwhile (they see the previous block's state until it returns), but only
        with a kept check state, which already holds this block's effects."""
        self.store.commit_block(pending.block, pending.writes, pending.tree, pending.tx_ids)

    def after_write(self, pending: _Pending, keep_check_state: bool) -> None:
        """What follows the write: snapshot, check state, caches."""
        if self.snapshot_interval and pending.block.height % self.snapshot_interval == 0:
            snapshots.take_snapshot(self.store, pending.block.height)
        if not keep_check_state:
            self._reset_check_state()
        else:  # the block may have written a record no check predicted (a tx checked for an earlier height)
            quotas.forget_written(self._check_windows, pending.writes)
        for tx_id in pending.tx_ids:
            self._forget(tx_id)

    def reset_check_state(self) -> None:
        """Start the check state afresh from the committed state (the mempool is empty or rechecked)."""
        self._reset_check_state()

    def _reset_check_state(self) -> None:
        self._check_state = Overlay(self.store)
        self._check_params = self.params(self._check_state)
        self._check_windows = {}

    # -- invariants ------------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Run every module's invariants over the committed state; raise InvariantBroken."""
        for module in self.modules:
            for invariant in module.invariants:
                invariant(self.store)

    # -- snapshots (state sync) ------------------------------------------------------------------

    def list_snapshots(self) -> list[abc.Snapshot]:
        return [abc.Snapshot(*row) for row in self.store.list_snapshots()]

    def offer_snapshot(self, snapshot: abc.Snapshot, app_hash: bytes) -> int:
        decision, self._restore = snapshots.offer(self.store, snapshot, app_hash)
        return decision

    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes:
        return self.store.load_snapshot_chunk(height, format, chunk)

    def apply_snapshot_chunk(self, index: int, chunk: bytes, sender: str) -> int:
        if self._restore is None:
            return abc.ApplyChunkResult.ABORT
        result = snapshots.apply_chunk(self.store, self._restore, index, chunk)
        if result == abc.ApplyChunkResult.ACCEPT and self._restore.next_index == len(self._restore.chunk_hashes):
            self._restore = None
            self._reset_check_state()
        return result


def _unexpected(exc: Exception, field: str, what: str, tx_id: bytes | None) -> TxError:
    """The rejection for a tx on which `what` raised something other than TxError.

    Node failures (a broken invariant, storage, memory) propagate and stop the node. Anything else
    is a bug met on this input: logged with its traceback, and the tx is rejected with a message
    that holds no exception text, so that every validator records the very same result."""
    if is_node_failure(exc):
        raise exc
    log.exception("%s raised %s on tx %s; the tx is rejected as tx/%d (%s)", what, type(exc).__name__,
                  tx_id.hex() if tx_id else "?", ERR_HANDLER_FAILED.code, ERR_HANDLER_FAILED.name)
    return ERR_HANDLER_FAILED(f"{field}: {what} failed on this input (a node bug, logged); the tx is rejected",
                              field)
