"""The node as the API sees it: submissions, tx and block lookups, accounts, state with proofs.

Every method here is synchronous and may block (the engine's lock, SQLite reads); the routes call
them from worker threads so the event loop stays responsive.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from typing import Any

import msgspec

from ..app.abc import Submitted, TxResult
from ..core import errors as core_errors
from ..core.encoding import to_json
from ..core.errors import TxError
from ..core.hashing import compute_tx_id
from ..core.storage import BlockRecord, ResultRecord
from ..core.tree import Proof
from ..core.types import address_from_str, address_to_str
from .errors import ApiError, ErrorNames, invalid_param, not_found, tx_rejected
from .metrics import ApiMetrics, read_engine
from .protocols import NodeLike
from .schemas import (
    AccountView,
    Attribute,
    BatchView,
    BlockView,
    CheckView,
    EventView,
    HealthView,
    ProofView,
    QueryView,
    StateView,
    StatusView,
    TxResultView,
    TxStatusView,
)

VERSION = "0.1.0"
MAX_CACHED_BLOCKS = 16
QUERY_NOT_FOUND = 1
# A tx whose check raised instead of answering gets this (codespace, code) in a batch answer.
CHECK_FAILED = ("api", 500)
# After this many txs in a row raise on their own, the engine itself is failing (CometBFT's RPC is
# down, say): the rest of the batch is answered unchecked rather than waiting on each in turn.
MAX_CONSECUTIVE_CHECK_FAILURES = 3
# Integer query arguments are passed to modules as text; outside int64..uint64 none can be meant.
MIN_QUERY_INT, MAX_QUERY_INT = -(2**63), 2**64 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")

log = logging.getLogger("cityledger.api")


class NodeService:
    """Reads and submissions against one node, shaped as API views."""

    def __init__(self, node: NodeLike, metrics: ApiMetrics) -> None:
        self.node = node
        self.metrics = metrics
        catalogs = [core_errors.TX] + [module.errors for module in node.app.modules]
        self.names = ErrorNames(catalogs)
        self._blocks: OrderedDict[int, BlockRecord] = OrderedDict()
        self._blocks_lock = threading.Lock()

    # -- submissions -----------------------------------------------------------------------------

    def submit(self, raw: bytes) -> CheckView:
        """Check one tx and admit it; raise ApiError (with the TxResult's code) if rejected."""
        submitted = self.node.engine.submit(raw)
        result = submitted.result
        if not result.ok:
            self.metrics.count_failure(result.codespace, result.code)
            raise tx_rejected(result, submitted.tx_id, self.names)
        return check_view(submitted.tx_id, result)

    def submit_batch(self, raws: list[bytes], failures: dict[int, str]) -> BatchView:
        """Check many txs in one engine call; `failures` are positions whose text did not decode."""
        submitted = iter(self._check_all(raws))
        results, accepted = [], 0
        for position in range(len(raws) + len(failures)):
            problem = failures.get(position)
            if problem is not None:
                code = core_errors.ERR_DECODE
                results.append(CheckView(tx_id="", ok=False, code=code.code, codespace=code.codespace, log=problem))
                self.metrics.count_failure(code.codespace, code.code)
                continue
            entry = next(submitted)
            view = check_view(entry.tx_id, entry.result)
            if view.ok:
                accepted += 1
            else:
                self.metrics.count_failure(view.codespace, view.code)
            results.append(view)
        return BatchView(accepted=accepted, rejected=len(results) - accepted, results=results)

    def _check_all(self, raws: list[bytes]) -> list[Submitted]:
        """The engine's check of each tx; if the batch call raises, each tx is submitted on its own."""
        if not raws:
            return []
        try:
            return self.node.engine.submit_batch(raws)
        except Exception:
            # The txs before the one that raised are already admitted; resubmitting finds them in the
            # mempool (answered as admitted below) and gives the failing tx its own result.
            log.exception("request %s: a batch of %d txs raised; checking them one by one",
                          secrets.token_hex(8), len(raws))
        out, failed_in_row = [], 0
        for raw in raws:
            if failed_in_row >= MAX_CONSECUTIVE_CHECK_FAILURES:
                out.append(_failed(raw, "tx: not checked, the engine failed on the txs before it"))
                continue
            entry = self._check_one(raw)
            failed_in_row = failed_in_row + 1 if entry.result.codespace == CHECK_FAILED[0] else 0
            out.append(entry)
        return out

    def _check_one(self, raw: bytes) -> Submitted:
        """One tx's check; an exception becomes that tx's failure, logged with a request id."""
        try:
            entry = self.node.engine.submit(raw)
        except Exception:
            request_id = secrets.token_hex(8)
            log.exception("request %s: checking tx %s raised", request_id, compute_tx_id(raw).hex())
            return _failed(raw, f"tx: its check failed unexpectedly, logged by the node as request {request_id}")
        duplicate = (core_errors.ERR_DUPLICATE.codespace, core_errors.ERR_DUPLICATE.code)
        if (entry.result.codespace, entry.result.code) == duplicate and self.is_pending(entry.tx_id):
            return Submitted(entry.tx_id, TxResult(log="admitted (in the mempool)"))
        return entry

    # -- txs and blocks --------------------------------------------------------------------------

    def tx_status(self, tx_id: bytes, with_tx: bool = False) -> TxStatusView:
        """pending, committed (with its result) or unknown."""
        store = self.node.store
        found = store.find_tx(tx_id)
        if found is None:
            # A block is stored before its txs leave the mempool: look there next, then again in the store.
            if self._in_mempool(tx_id):
                return TxStatusView(tx_id=tx_id.hex(), status="pending")
            found = store.find_tx(tx_id)
            if found is None:
                return TxStatusView(tx_id=tx_id.hex(), status="unknown")
        height, index = found
        block = self.block_record(height)
        tx_view = self._tx_json(block.txs[index]) if with_tx else None
        return TxStatusView(tx_id=tx_id.hex(), status="committed", height=height, index=index,
                            result=result_view(block.results[index]), tx=tx_view)

    def is_pending(self, tx_id: bytes) -> bool:
        """True while the tx waits in the mempool and is not yet stored in a block."""
        return self.node.store.find_tx(tx_id) is None and self._in_mempool(tx_id)

    def _in_mempool(self, tx_id: bytes) -> bool:
        return self.node.engine.is_pending(tx_id)

    def _tx_json(self, raw: bytes) -> Any:
        try:
            decoded = self.node.app.codec.decode(raw)
        except TxError:  # committed under rules this node no longer decodes: show the result only
            return None
        return {"sender": address_to_str(decoded.sender), **to_json(decoded.tx.body)}

    def block_record(self, height: int) -> BlockRecord:
        """A committed block (recent ones cached: blocks never change once committed)."""
        with self._blocks_lock:
            cached = self._blocks.get(height)
        if cached is not None:
            return cached
        block = self.node.store.get_block(height)
        if block is None:
            raise not_found(f"height: no block at height {height} (latest is {self.node.store.last_height()})")
        with self._blocks_lock:
            self._blocks[height] = block
            while len(self._blocks) > MAX_CACHED_BLOCKS:
                self._blocks.popitem(last=False)
        return block

    def block(self, height: int | None, include_txs: bool = False) -> BlockView:
        """A block's header facts, tx ids and results (the latest if height is None)."""
        if height is None:
            height = self.node.store.last_height()
        if height < 0:
            raise invalid_param(f"height: expected a non-negative integer, got {height}")
        block = self.block_record(height)
        return BlockView(height=block.height, time_ns=block.time_ns, hash=block.hash.hex(),
                         app_hash=block.app_hash.hex(), proposer=block.proposer.hex(), num_txs=len(block.txs),
                         tx_ids=[compute_tx_id(tx).hex() for tx in block.txs],
                         results=[result_view(r) for r in block.results],
                         txs=[tx.hex() for tx in block.txs] if include_txs else None)

    # -- state -----------------------------------------------------------------------------------

    def account(self, text: str) -> AccountView:
        """Balance and nonces of an address given as 'city…' or 40 hex digits."""
        try:
            address = address_from_str(text, "address")
        except ValueError as exc:
            raise invalid_param(str(exc)) from None
        app = self.node.app
        balance = self._query_json("/bank/balance", {"address": address.hex()})
        nonce_result = app.query("/auth/nonce", address)
        nonce = int(nonce_result.value or b"0")
        pending = self.node.engine.pending_nonce(address)
        return AccountView(address=address_to_str(address), balance=int(balance["balance"]), nonce=nonce,
                           pending_nonce=max(nonce, pending), height=nonce_result.height)

    def state(self, key_hex: str, height: int, prove: bool) -> StateView:
        """The value of a raw state key at a height, with a proof against that height's app hash."""
        try:
            key = bytes.fromhex(key_hex)
        except ValueError:
            raise invalid_param(f"key_hex: expected hex digits, got {key_hex!r}") from None
        if not key:
            raise invalid_param("key_hex: expected a non-empty key")
        if height < 0:
            raise invalid_param(f"height: expected a non-negative integer, got {height}")
        result = self.node.app.query("/store", key, height, prove)
        if result.code:
            status = 404 if result.code == QUERY_NOT_FOUND else 400
            raise ApiError(status, f"{result.codespace or 'query'}/{result.code}", result.log)
        info = self.node.store.height_info(result.height)
        if info is None:
            raise not_found(f"height: {result.height} is not a committed height")
        exists = result.log != "absent"
        proof = decode_proof(result.proof) if prove else None
        return StateView(key=key.hex(), value=result.value.hex() if exists else None, exists=exists,
                         height=result.height, app_hash=info.app_hash.hex(),
                         proof=None if proof is None else proof_view(proof),
                         proof_bytes=None if proof is None else proof.to_bytes().hex())

    def query(self, module: str, name: str, args: dict[str, str]) -> QueryView:
        """A module query with string arguments."""
        path = f"/{module}/{name}"
        if path == "/auth/nonce":
            return QueryView(path=path, height=self.node.store.last_height(),
                             result={"nonce": self.account(args.get("address", "")).nonce})
        value = self._query_json(path, args)
        return QueryView(path=path, height=self.node.store.last_height(), result=value)

    def _query_json(self, path: str, args: dict[str, str]) -> Any:
        check_query_args(args)
        try:
            result = self.node.app.query(path, json.dumps(args, sort_keys=True).encode())
        except (ValueError, OverflowError) as exc:  # a module that range-checks by raising
            names = ", ".join(sorted(args)) or "args"
            raise ApiError(400, "query/bad_request", f"{names}: not accepted by {path} ({exc})"[:500]) from None
        if result.code == QUERY_NOT_FOUND:
            raise ApiError(404, "query/not_found", result.log)
        if result.code:
            raise ApiError(400, "query/bad_request", result.log)
        return msgspec.json.decode(result.value)

    # -- node ------------------------------------------------------------------------------------

    def status(self) -> StatusView:
        node = self.node
        height = node.store.last_height()
        info = node.store.height_info(height)
        figures = read_engine(node)
        return StatusView(chain_id=node.app.chain_id, engine=node.engine.name, version=VERSION, height=height,
                          app_hash=info.app_hash.hex() if info else "", block_time_ns=info.time_ns if info else 0,
                          mempool_size=int(figures["mempool_size"]), mempool_bytes=int(figures["mempool_bytes"]),
                          blocks_committed=int(figures["blocks"]), txs_committed=int(figures["txs"]))

    def health(self) -> HealthView:
        """ok, or 503 when the engine reports that it stopped on an error."""
        error = self.node.engine.fatal_error()
        if error is not None:
            raise ApiError(503, "api/unavailable", f"engine: stopped on {type(error).__name__}: {error}")
        return HealthView(status="ok", height=self.node.store.last_height())


def check_query_args(args: dict[str, str]) -> None:
    """Raise 400 for an integer argument outside int64..uint64, before any module converts it."""
    for name, value in sorted(args.items()):
        if _INTEGER.fullmatch(value) and not (len(value) <= 21 and MIN_QUERY_INT <= int(value) <= MAX_QUERY_INT):
            shown = value if len(value) <= 40 else f"{len(value)} characters"
            raise invalid_param(f"{name}: expected an integer from {MIN_QUERY_INT} to {MAX_QUERY_INT}, got {shown}")


def _failed(raw: bytes, message: str) -> Submitted:
    return Submitted(compute_tx_id(raw), TxResult(code=CHECK_FAILED[1], codespace=CHECK_FAILED[0], log=message))


def check_view(tx_id: bytes, result: TxResult) -> CheckView:
    return CheckView(tx_id=tx_id.hex(), ok=result.code == 0, code=result.code, codespace=result.codespace,
                     log=result.log)


def result_view(record: ResultRecord) -> TxResultView:
    events = [EventView(type=kind, attributes=[Attribute(key=k, value=v) for k, v in attributes])
              for kind, attributes in record.events]
    return TxResultView(code=record.code, codespace=record.codespace, log=record.log, data=record.data.hex(),
                        events=events)


def proof_view(proof: Proof) -> ProofView:
    """A proof as the API shows it: Proof.to_dict's hex levels and leaf."""
    return ProofView(**proof.to_dict())


def decode_proof(raw: bytes) -> Proof:
    """A proof from a /store query: Proof.to_bytes form, or the msgpack map of its fields."""
    if raw[:1] and raw[0] & 0xF0 == 0x80:  # a msgpack fixmap: {"siblings": [...], "leaf": ...}
        fields = msgspec.msgpack.decode(raw)
        leaf = fields.get("leaf")
        return Proof(tuple(fields["siblings"]), None if leaf is None else (leaf[0], leaf[1]))
    return Proof.from_bytes(raw)
