"""How the identity services see the ledger: read state at a height, send transactions.

Wallets, issuers and verifiers depend on the two small protocols below, never on an engine. The
in-process `LocalLedger` drives a CityApp directly (tests, benchmarks); `NodeLedger` reads a
running node's store and submits through its engine (services hosted beside a node); the SDK's
`RemoteLedger` implements the reads over the REST API's state queries with proofs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from ...app import abc
from ...app.application import CityApp
from ...core.accounts import get_nonce
from ...core.encoding import Message
from ...core.keys import PrivateKey, Signer, compute_address
from ...core.state import StateReader
from ...core.tx import build_tx

DEFAULT_BLOCK_INTERVAL_NS = 1_000_000_000


class LedgerReader(Protocol):
    """Read access to committed state."""

    def height(self) -> int:
        """The last committed height."""

    def state_at(self, height: int) -> StateReader:
        """The committed state as it was after block `height`."""


class TxSender(Protocol):
    """Write access: sign and send messages, wait for them to be committed."""

    def send(self, keys: Sequence[PrivateKey], messages: Sequence[Message],
             signer: Signer | None = None) -> "TxOutcome":
        """Sign with `keys` (for `signer`, default the 1-of-1 of keys[0]), commit, return the outcome."""


@dataclass(frozen=True)
class TxOutcome:
    """A committed transaction's result."""

    height: int
    code: int
    codespace: str
    log: str
    events: tuple

    @property
    def ok(self) -> bool:
        return self.code == 0

    def raise_for_error(self) -> "TxOutcome":
        """Return self, or raise LedgerError with the ledger's code and message."""
        if self.code:
            raise LedgerError(self.codespace, self.code, self.log)
        return self


class LedgerError(RuntimeError):
    """The ledger refused a transaction."""

    def __init__(self, codespace: str, code: int, log: str) -> None:
        super().__init__(f"{codespace}/{code}: {log}")
        self.codespace = codespace
        self.code = code
        self.log = log


class _StateAtHeight:
    """A StateReader over a retained past height of the store's state tree."""

    def __init__(self, store: Any, height: int) -> None:
        self._store = store
        self._height = height

    def get(self, key: bytes) -> bytes | None:
        return self._store.get_at(key, self._height)[0]


class LocalLedger:
    """A CityApp driven in-process: every `send` makes and commits one block."""

    def __init__(self, app: CityApp, time_ns: int | None = None) -> None:
        self.app = app
        self.store = app.store
        info = self.store.height_info(self.store.last_height())
        self.time_ns = time_ns if time_ns is not None else (info.time_ns if info else 0)

    def height(self) -> int:
        return self.store.last_height()

    def state_at(self, height: int) -> StateReader:
        if height == self.store.last_height():
            return self.store
        return _StateAtHeight(self.store, height)

    def nonce(self, signer: Signer) -> int:
        """The next nonce of a signer's account."""
        return get_nonce(self.store, compute_address(signer))

    def build(self, keys: Sequence[PrivateKey], messages: Sequence[Message], signer: Signer | None = None,
              nonce: int | None = None) -> bytes:
        """A signed transaction with the account's next nonce."""
        signer = signer or keys[0].signer()
        return build_tx(self.app.chain_id, list(keys), self.nonce(signer) if nonce is None else nonce,
                        list(messages), signer=signer)

    def send(self, keys: Sequence[PrivateKey], messages: Sequence[Message], signer: Signer | None = None) -> TxOutcome:
        return self.commit_block([self.build(keys, messages, signer)])[0]

    def commit_block(self, txs: Sequence[bytes]) -> list[TxOutcome]:
        """Check, finalize and commit one block of txs; txs refused by check_tx are reported, not included."""
        height = self.store.last_height() + 1
        outcomes: list[TxOutcome | None] = []
        admitted = []
        for raw in txs:
            checked = self.app.check_tx(raw)
            if checked.code:
                outcomes.append(TxOutcome(height, checked.code, checked.codespace, checked.log, ()))
            else:
                outcomes.append(None)
                admitted.append(raw)
        self.time_ns += DEFAULT_BLOCK_INTERVAL_NS
        result = self.app.finalize_block(abc.BlockRequest(height=height, time_ns=self.time_ns, txs=tuple(admitted)))
        self.app.commit()
        delivered = iter(result.tx_results)
        return [outcome or _outcome(height, next(delivered)) for outcome in outcomes]

    def query(self, path: str, **args: str) -> Any:
        """A module query's JSON answer; raise LookupError or ValueError as the query did."""
        result = self.app.query(path, json.dumps(args).encode())
        if result.code == 1:
            raise LookupError(result.log)
        if result.code:
            raise ValueError(result.log)
        return json.loads(result.value)


class NodeLedger:
    """A running node of any engine: state from its store, txs through its engine's mempool.

    What services hosted beside a node (issuers, the API's verifier) read and send through. Reads
    at a height use that height's state tree, so they stay consistent while blocks commit.
    """

    def __init__(self, node: Any, commit_timeout_s: float = 60.0) -> None:
        self.node = node
        self.commit_timeout_s = commit_timeout_s

    def height(self) -> int:
        return self.node.store.last_height()

    def state_at(self, height: int) -> StateReader:
        return _StateAtHeight(self.node.store, height)

    def send(self, keys: Sequence[PrivateKey], messages: Sequence[Message], signer: Signer | None = None) -> TxOutcome:
        """Sign with the account's next nonce, submit, and wait until the tx is committed."""
        signer = signer or keys[0].signer()
        app, address = self.node.app, compute_address(signer)
        nonce = self.node.engine.pending_nonce(address)
        raw = build_tx(app.chain_id, list(keys), nonce, list(messages), signer=signer)
        submitted = self.node.engine.submit(raw)
        if not submitted.result.ok:
            result = submitted.result
            return TxOutcome(self.height() + 1, result.code, result.codespace, result.log, ())
        found = self.node.engine.wait_for_tx(submitted.tx_id, self.commit_timeout_s)
        if found is None:
            raise LedgerError("tx", 0, f"tx {submitted.tx_id.hex()} not committed within {self.commit_timeout_s} s")
        height, index = found
        record = self.node.store.get_block(height).results[index]
        return TxOutcome(height, record.code, record.codespace, record.log, tuple(record.events))


def _outcome(height: int, result: abc.TxResult) -> TxOutcome:
    return TxOutcome(height, result.code, result.codespace, result.log, result.events)
