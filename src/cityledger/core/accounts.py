"""Accounts: one state record per address holding its next nonce and its balance.

    key   = 00 01 14 <address>                       (auth module, collection 0x01)
    value = nonce (u64 big-endian) || balance (u64 big-endian micro-credits)

Every tx advances its sender's nonce, and a payment also changes the sender's balance. Keeping the
two in one record, as Ethereum keeps nonce and balance in one account leaf, makes a sender one
state key, one tree leaf and one stored row per block instead of two. A record whose nonce and
balance are both zero is deleted, so an address that never held credit or sent a tx costs no state.
The auth checks own the nonce half and the bank owns the balance half; each writes the other half
back unchanged.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .statekeys import PREFIX_AUTH, collection_prefix

ACCOUNTS_PREFIX = collection_prefix(PREFIX_AUTH, 0x01)
ACCOUNT_BYTES = 16
MAX_ACCOUNT_FIELD = 2**64 - 1

_LAYOUT = struct.Struct(">QQ")
pack_account = _LAYOUT.pack  # (nonce, balance) -> 16 bytes; struct.error when out of u64 range
unpack_account = _LAYOUT.unpack  # 16 bytes -> (nonce, balance); struct.error for any other length


class Account(NamedTuple):
    """An account's next nonce and its balance in micro-credits."""

    nonce: int
    balance: int


EMPTY_ACCOUNT = Account(0, 0)
EMPTY_VALUE = (0, 0)  # the hot paths' (nonce, balance) of an absent record


def account_key(address: bytes) -> bytes:
    """Key of an address's account record: make_key(PREFIX_AUTH, 0x01, address), inlined (hot path)."""
    return ACCOUNTS_PREFIX + bytes((len(address),)) + address


def encode_account(nonce: int, balance: int) -> bytes | None:
    """The stored value of an account; None (delete the record) when both fields are zero."""
    if not nonce and not balance:
        return None
    try:
        return pack_account(nonce, balance)
    except struct.error:
        raise ValueError(f"account: nonce and balance must be 0 to {MAX_ACCOUNT_FIELD}, "
                         f"got {nonce}, {balance}") from None


def decode_account(raw: bytes | None) -> Account:
    """An account from its stored value (None: the empty account); raise ValueError on bad bytes."""
    if raw is None:
        return EMPTY_ACCOUNT
    try:
        return tuple.__new__(Account, unpack_account(raw))
    except struct.error:
        raise ValueError(f"account: expected {ACCOUNT_BYTES} bytes (nonce, balance), got {len(raw)}") from None


def read_account(state, address: bytes) -> Account:
    """An address's account as seen through a state layer (the empty account if it has none)."""
    return decode_account(state.get(account_key(address)))


def get_nonce(state, address: bytes) -> int:
    """An account's next expected nonce."""
    return read_account(state, address).nonce
