"""Hashing: SHA-256 everywhere, with domain separation prefixes."""

import hashlib

DOMAIN_TX_SIGN = b"cityledger/tx-sign/1\x00"


def sha256(data: bytes) -> bytes:
    """SHA-256 digest."""
    return hashlib.sha256(data).digest()


def compute_tx_id(tx_bytes: bytes) -> bytes:
    """A transaction's id: the SHA-256 of its canonical bytes."""
    return hashlib.sha256(tx_bytes).digest()
