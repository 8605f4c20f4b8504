"""The two error channels: TxError for rejected transactions, InvariantBroken for bugs.

A rejected transaction gets a stable (codespace, code) pair and a message that names the bad value;
it maps onto the ABCI result code. A broken invariant is a bug in the node and must crash loudly.
"""

from __future__ import annotations

import sqlite3


class TxError(Exception):
    """A transaction was rejected: stable (codespace, code), a message naming the bad field."""

    def __init__(self, codespace: str, code: int, message: str, field: str | None = None) -> None:
        if code <= 0:
            raise ValueError(f"code: expected a positive error code, got {code}")
        super().__init__(message)
        self.codespace = codespace
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"TxError({self.codespace}/{self.code}: {self.message})"


class InvariantBroken(RuntimeError):
    """A ledger invariant no longer holds: a bug, never a user error."""


# Failures of the node itself rather than of a tx: they may strike one validator and not another,
# so turning them into a tx's rejection would fork the chain; they stop the node instead.
NODE_FAILURES: tuple[type[BaseException], ...] = (InvariantBroken, MemoryError, OSError, sqlite3.Error)


def is_node_failure(exc: BaseException) -> bool:
    """True for a broken invariant, a storage or an out-of-memory error: the node must stop."""
    return isinstance(exc, NODE_FAILURES)


class ErrorCatalog:
    """One module's registered errors, so codes are stable and listed in one place."""

    def __init__(self, codespace: str) -> None:
        self.codespace = codespace
        self._codes: dict[int, str] = {}

    def register(self, code: int, name: str) -> "ErrorKind":
        """Register a code once; codes are part of the public API and never reused."""
        if code in self._codes:
            raise ValueError(f"code: {self.codespace}/{code} already registered as {self._codes[code]}")
        self._codes[code] = name
        return ErrorKind(self.codespace, code, name)

    def codes(self) -> dict[int, str]:
        """All registered codes of this codespace."""
        return dict(sorted(self._codes.items()))


class ErrorKind:
    """A registered error; call it with a message to get the TxError to raise."""

    def __init__(self, codespace: str, code: int, name: str) -> None:
        self.codespace = codespace
        self.code = code
        self.name = name

    def __call__(self, message: str, field: str | None = None) -> TxError:
        return TxError(self.codespace, self.code, message, field)


# Errors of the transaction envelope itself (codespace "tx"), shared by every module.
TX = ErrorCatalog("tx")
ERR_DECODE = TX.register(1, "decode")
ERR_TOO_LARGE = TX.register(2, "too_large")
ERR_CHAIN_ID = TX.register(3, "wrong_chain_id")
ERR_SIGNATURE = TX.register(4, "bad_signature")
ERR_NONCE_REPLAY = TX.register(5, "nonce_replayed")
ERR_NONCE_GAP = TX.register(6, "nonce_out_of_order")
ERR_EXPIRED = TX.register(7, "expired")
ERR_UNKNOWN_MESSAGE = TX.register(8, "unknown_message_type")
ERR_INVALID = TX.register(9, "invalid_field")
ERR_MEMPOOL_FULL = TX.register(10, "mempool_full")
ERR_QUOTA = TX.register(11, "sender_quota_exceeded")
ERR_DUPLICATE = TX.register(12, "duplicate_tx")
ERR_NON_CANONICAL = TX.register(13, "non_canonical_encoding")
ERR_TOO_MANY_MESSAGES = TX.register(14, "too_many_messages")
ERR_UNAUTHORIZED = TX.register(15, "unauthorized")
# A handler (or the decoder) raised something other than TxError on this tx: a bug, logged by the
# node; the tx is rejected the same way on every validator, so one bad input cannot halt the chain.
ERR_HANDLER_FAILED = TX.register(16, "handler_failed")
