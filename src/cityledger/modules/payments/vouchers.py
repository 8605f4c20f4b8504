"""Payment-channel vouchers: the one pure definition the chain and off-chain payees both use.

A voucher says "channel `channel_id` on chain `chain_id` owes its payee `amount` in total", and a
higher `nonce` supersedes a lower one. It is a signature by the channel's voucher key over

    DOMAIN_VOUCHER || msgpack([chain_id, channel_id, amount, nonce])

so it verifies with one signature check, Ed25519 or P-256, and means nothing on another chain or
channel. Whether it is still redeemable (nonce, deposit, settlement) is the channel's state.
"""

from __future__ import annotations

from ...core.encoding import encode
from ...core.keys import PrivateKey, PublicKey, verify_signature

DOMAIN_VOUCHER = b"cityledger/payments-voucher/1\x00"


def compute_voucher_bytes(chain_id: str, channel_id: int, amount: int, nonce: int) -> bytes:
    """What a payer signs to owe `amount` in total on a channel."""
    return DOMAIN_VOUCHER + encode([chain_id, channel_id, amount, nonce])


def sign_voucher(key: PrivateKey, chain_id: str, channel_id: int, amount: int, nonce: int) -> bytes:
    """The payer's 64-byte voucher signature."""
    return key.sign(compute_voucher_bytes(chain_id, channel_id, amount, nonce))


def verify_voucher(key: PublicKey, chain_id: str, channel_id: int, amount: int, nonce: int,
                   signature: bytes) -> bool:
    """True if `signature` is `key`'s voucher for exactly these values."""
    return verify_signature(key, compute_voucher_bytes(chain_id, channel_id, amount, nonce), signature)
