"""What the node answers, as typed values; byte strings stay hex as on the wire.

Unknown fields are ignored so that an older SDK keeps working against a newer node.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Model(msgspec.Struct, kw_only=True, frozen=True):
    pass


class Attribute(_Model, kw_only=True):
    key: str
    value: str


class Event(_Model, kw_only=True):
    type: str
    attributes: list[Attribute] = []

    def get(self, key: str) -> str | None:
        """The value of an attribute (None if absent)."""
        return next((a.value for a in self.attributes if a.key == key), None)


class TxResult(_Model, kw_only=True):
    """A committed tx's outcome: code 0 is success."""

    code: int
    codespace: str = ""
    log: str = ""
    data: str = ""
    events: list[Event] = []

    @property
    def ok(self) -> bool:
        return self.code == 0


class CheckResult(_Model, kw_only=True):
    """A tx's admission to the mempool."""

    tx_id: str
    ok: bool
    code: int
    codespace: str = ""
    log: str = ""


class BatchResult(_Model, kw_only=True):
    accepted: int
    rejected: int
    results: list[CheckResult]


class TxStatus(_Model, kw_only=True):
    """pending (in the mempool), committed (with result) or unknown."""

    tx_id: str
    status: str
    height: int | None = None
    index: int | None = None
    result: TxResult | None = None
    tx: Any = None

    @property
    def committed(self) -> bool:
        return self.status == "committed"


class SubmitResult(TxStatus, kw_only=True, frozen=True):
    """POST /txs: the check result and, when waited for, the committed result."""

    check: CheckResult
    timed_out: bool = False


class Block(_Model, kw_only=True):
    height: int
    time_ns: int
    hash: str
    app_hash: str
    proposer: str = ""
    num_txs: int
    tx_ids: list[str]
    results: list[TxResult]
    txs: list[str] | None = None


class Account(_Model, kw_only=True):
    address: str
    balance: int
    nonce: int
    pending_nonce: int
    height: int


class StateValue(_Model, kw_only=True):
    """A state value at a height and, if asked for, its proof against that height's app hash."""

    key: str
    value: str | None
    exists: bool
    height: int
    app_hash: str
    proof: dict | None = None
    proof_bytes: str | None = None

    @property
    def value_bytes(self) -> bytes | None:
        return None if self.value is None else bytes.fromhex(self.value)


class QueryResult(_Model, kw_only=True):
    path: str
    height: int
    result: Any


class Status(_Model, kw_only=True):
    chain_id: str
    engine: str
    version: str
    height: int
    app_hash: str
    block_time_ns: int
    mempool_size: int
    mempool_bytes: int = 0
    blocks_committed: int = 0
    txs_committed: int = 0


class Health(_Model, kw_only=True):
    status: str
    height: int
