"""Bodies and answers of the payments routes (api/routes/payments.py).

Amounts are integer micro-credits, addresses `city` + 40 hex digits, keys and signatures hex.
"""

from __future__ import annotations

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class VoucherKeyView(_View):
    """A channel's voucher key: the payer's key that signs its vouchers."""

    scheme: int  # 1 Ed25519, 2 P-256
    key: str


class ChannelView(_View):
    """GET /payments/channels/{id}: a unidirectional channel and what is left of its deposit."""

    channel_id: int
    payer: str
    payee: str
    voucher_key: VoucherKeyView
    deposit: int
    redeemed: int
    balance: int  # deposit less redeemed (0 once settled)
    nonce: int  # of the newest redeemed voucher
    settle_delay: int
    closing_height: int  # 0 unless closing: the end of the challenge window
    status: str  # open | closing | settled
    opened_height: int


class EscrowView(_View):
    """GET /payments/escrows/{id}: a locked amount, until released or refunded."""

    escrow_id: int
    payer: str
    payee: str
    amount: int
    timeout_height: int
    created_height: int


class PolicyView(_View):
    """GET /payments/policies/{device}: what a device's own account may spend, set by its owner."""

    device: str
    owner: str
    current: bool  # binds the device's current owner and ownership epoch
    daily_cap: int
    counterparty_cap: int
    kinds: list[str]
    addresses: list[str]
    expiry_height: int
    frozen: bool
    updated_height: int
    spent_today: int | None  # on the block-time day of the height asked for
    max_txs_per_window: int  # 0: the chain's device default


class CounterpartyView(_View):
    """GET /payments/counterparties/{address}: the kind an account declared, vouched for by its device."""

    address: str
    kind: str
    device: str
    height: int


class LockedView(_View):
    """GET /payments/locked: credits locked in escrows and channels, and the account holding them."""

    locked: int
    account: str


class VoucherCheckBody(_Body):
    """POST /payments/vouchers/check: would the chain redeem this voucher now?"""

    channel_id: int
    amount: int
    nonce: int
    signature: str  # hex


class VoucherCheckView(_View):
    """A voucher the chain would redeem at `height`, and what it would pay the payee."""

    channel_id: int
    amount: int
    nonce: int
    adds: int  # over the newest redeemed voucher
    payee: str
    height: int


PAYMENTS_BODY_TYPES = (VoucherCheckBody,)
PAYMENTS_VIEW_TYPES = (ChannelView, EscrowView, PolicyView, CounterpartyView, LockedView, VoucherCheckView,
                       VoucherKeyView)
