"""The node's REST bodies as msgspec Structs: what the API decodes and answers, what the SDK sends and reads.

One definition serves four purposes: decoding request bodies on the node (msgspec is several times
faster than pydantic on a 10,000-tx batch), encoding responses, the JSON Schemas merged into
/openapi.json, and decoding responses in the SDK. Byte strings travel as lowercase hex;
transactions in requests as base64 or hex. Views ignore fields they do not know, so an older SDK
keeps reading a newer node; request bodies refuse them, so a typo is reported, not dropped.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Encoding = Literal["auto", "base64", "hex"]


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class SubmitTxBody(_Body):
    """POST /txs: one signed transaction, base64 or hex ("auto" tells them apart)."""

    tx: str
    encoding: Encoding = "auto"


class SubmitBatchBody(_Body):
    """POST /txs/batch: up to 10,000 signed transactions."""

    txs: list[str]
    encoding: Encoding = "auto"


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies: values, frozen once answered or read."""


class IssueView(_View, kw_only=True, frozen=True):
    """One reason a document was refused: its JSON path and what is wrong there."""

    path: str
    message: str


class ErrorDetail(_View, kw_only=True, frozen=True, omit_defaults=True):
    """What went wrong: a stable code '<codespace>/<code or name>' and a message naming the field."""

    code: str
    message: str
    field: str | None = None
    codespace: str | None = None
    abci_code: int | None = None
    name: str | None = None
    tx_id: str | None = None
    issues: list[IssueView] | None = None  # every schema error of a refused document, with its JSON path


class ErrorBody(_View, kw_only=True, frozen=True):
    """Every error response."""

    error: ErrorDetail


class Attribute(_View, kw_only=True, frozen=True):
    """One key/value attribute of an event."""

    key: str
    value: str


class EventView(_View, kw_only=True, frozen=True):
    """An event a committed tx emitted."""

    type: str
    attributes: list[Attribute]

    def get(self, key: str) -> str | None:
        """The value of an attribute (None if absent)."""
        return next((a.value for a in self.attributes if a.key == key), None)


class TxResultView(_View, kw_only=True, frozen=True):
    """The outcome of a committed tx: code 0 is success."""

    code: int
    codespace: str
    log: str
    data: str
    events: list[EventView]

    @property
    def ok(self) -> bool:
        return self.code == 0


class CheckView(_View, kw_only=True, frozen=True):
    """The outcome of admitting one tx to the mempool (CheckTx)."""

    tx_id: str
    ok: bool
    code: int
    codespace: str
    log: str


class BatchView(_View, kw_only=True, frozen=True):
    """POST /txs/batch: one check result per tx, in request order."""

    accepted: int
    rejected: int
    results: list[CheckView]


class TxStatusView(_View, kw_only=True, frozen=True):
    """Where a tx is: pending (in the mempool), committed (with its result) or unknown."""

    tx_id: str
    status: Literal["pending", "committed", "unknown"]
    height: int | None = None
    index: int | None = None
    result: TxResultView | None = None
    tx: Any = None

    @property
    def committed(self) -> bool:
        return self.status == "committed"


class SubmitView(TxStatusView, kw_only=True, frozen=True):
    """POST /txs: the check result, and the committed result when asked to wait."""

    check: CheckView
    timed_out: bool = False


class BlockView(_View, kw_only=True, frozen=True):
    """A committed block: header facts, tx ids and results."""

    height: int
    time_ns: int
    hash: str
    app_hash: str
    proposer: str
    num_txs: int
    tx_ids: list[str]
    results: list[TxResultView]
    txs: list[str] | None = None


class AccountView(_View, kw_only=True, frozen=True):
    """An account's balance (micro-credits) and nonces at the latest height."""

    address: str
    balance: int
    nonce: int
    pending_nonce: int
    height: int


class ProofView(_View, kw_only=True, frozen=True):
    """A state-tree proof: one level per internal node from the root down (hex of the sibling bitmap and
    sibling hashes, see core/tree/proofs.py) and the leaf found at the end."""

    siblings: list[str]
    leaf: list[str] | None


class StateView(_View, kw_only=True, frozen=True):
    """A state value at a height, with a proof against that height's app hash when asked."""

    key: str
    value: str | None
    exists: bool
    height: int
    app_hash: str
    proof: ProofView | None = None
    proof_bytes: str | None = None

    @property
    def value_bytes(self) -> bytes | None:
        return None if self.value is None else bytes.fromhex(self.value)


class QueryView(_View, kw_only=True, frozen=True):
    """A module query's JSON result."""

    path: str
    height: int
    result: Any


class StatusView(_View, kw_only=True, frozen=True):
    """Node status."""

    chain_id: str
    engine: str
    version: str
    height: int
    app_hash: str
    block_time_ns: int
    mempool_size: int
    mempool_bytes: int
    blocks_committed: int
    txs_committed: int


class HealthView(_View, kw_only=True, frozen=True):
    """Liveness: 'ok' and the latest committed height."""

    status: str
    height: int


RESPONSE_TYPES = (ErrorBody, BatchView, SubmitView, TxStatusView, BlockView, AccountView, StateView, QueryView,
                  StatusView, HealthView)
REQUEST_TYPES = (SubmitTxBody, SubmitBatchBody)
