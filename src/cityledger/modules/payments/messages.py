"""Payments messages (versioned), stored records and limits: device spending policies, escrow and
unidirectional payment channels."""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.keys import PublicKey
from ...core.types import Address, Amount, Height

# What a device may pay for, and which registered device kind vouches for a counterparty of it.
KIND_CHARGER = "charger"
KIND_PARKING = "parking"
KIND_TOLL = "toll"
COUNTERPARTY_KINDS = (KIND_CHARGER, KIND_PARKING, KIND_TOLL)
COUNTERPARTY_DEVICE_KINDS = {KIND_CHARGER: "charger", KIND_PARKING: "meter", KIND_TOLL: "meter"}

DAY_NS = 86_400 * 10**9  # a policy's day, in block time: day = block time_ns // DAY_NS
MAX_POLICY_ADDRESSES = 32  # allowed counterparty addresses per policy
MAX_QUOTA_TXS = 1_000_000_000  # the most txs a quota (chain's or a device policy's) may allow per window
MAX_POLICY_BLOCKS = 10_000_000  # a policy's expiry lies at most this far ahead (a policy always expires)
MIN_SETTLE_DELAY_BLOCKS = 2  # a channel's challenge window: at least this many blocks
MAX_SETTLE_DELAY_BLOCKS = 100_000
MAX_ESCROW_BLOCKS = 1_000_000  # an escrow's timeout lies at most this far ahead
MAX_NONCE = 2**63 - 1

STATUS_OPEN = "open"
STATUS_CLOSING = "closing"
STATUS_SETTLED = "settled"
CHANNEL_STATUSES = (STATUS_OPEN, STATUS_CLOSING, STATUS_SETTLED)


class SetPolicy(Message, tag="payments/1.0/set_policy"):
    """The owner of a device sets (or replaces, which also unfreezes) what the device may spend."""

    device: str  # the device's did:city DID
    daily_cap: Amount  # per block-time day, all counterparties together (at least 1)
    counterparty_cap: Amount  # per block-time day, per counterparty (at least 1)
    kinds: list[str]  # allowed counterparty kinds, sorted, distinct (subset of COUNTERPARTY_KINDS)
    addresses: list[Address]  # allowed counterparty addresses, sorted, distinct
    expiry_height: Height  # the last height the policy allows payments at
    # txs the device may send per quota window (0: the chain's device default; never above the
    # chain's per-sender quota): a device's share of the spam limits is its owner's to set
    max_txs_per_window: int = 0


class FreezeDevice(Message, tag="payments/1.0/freeze"):
    """The owner stops every payment from the device at once (a stolen car)."""

    device: str


class DeclareCounterparty(Message, tag="payments/1.0/declare_counterparty"):
    """The sender is a counterparty of `kind`, vouched for by an active device it owns."""

    kind: str
    device: str


class LockEscrow(Message, tag="payments/1.0/escrow_lock"):
    """Lock `amount` for `payee`, released by the sender, refundable from `timeout_height` on."""

    payee: Address
    amount: Amount
    timeout_height: Height


class ReleaseEscrow(Message, tag="payments/1.0/escrow_release"):
    """The payer pays a locked escrow to its payee."""

    escrow_id: int


class RefundEscrow(Message, tag="payments/1.0/escrow_refund"):
    """The payer takes an escrow back once its timeout height is reached."""

    escrow_id: int


class OpenChannel(Message, tag="payments/1.0/channel_open"):
    """Open a unidirectional channel to `payee`; vouchers are signed by `voucher_key`, one of the
    sender's own keys."""

    payee: Address
    deposit: Amount
    settle_delay: int  # blocks of the challenge window after start_close
    voucher_key: PublicKey


class TopUpChannel(Message, tag="payments/1.0/channel_top_up"):
    """The payer adds to an open channel's deposit."""

    channel_id: int
    amount: Amount


class RedeemVoucher(Message, tag="payments/1.0/channel_redeem"):
    """The payee takes what its newest voucher owes beyond what it already redeemed."""

    channel_id: int
    amount: Amount  # cumulative
    nonce: int
    signature: bytes


class CloseChannel(Message, tag="payments/1.0/channel_close"):
    """The payee settles at once, redeeming a voucher first unless `signature` is empty."""

    channel_id: int
    amount: Amount
    nonce: int
    signature: bytes


class StartClose(Message, tag="payments/1.0/channel_start_close"):
    """The payer starts the challenge window; the payee may still redeem during it."""

    channel_id: int


class FinalizeChannel(Message, tag="payments/1.0/channel_finalize"):
    """Either party settles a channel whose challenge window has passed."""

    channel_id: int


class PolicyRecord(Record):
    """A device's spending policy, valid only for the owner and ownership epoch that set it."""

    device: str
    owner: Address
    epoch: int
    daily_cap: Amount
    counterparty_cap: Amount
    kinds: list[str]
    addresses: list[Address]
    expiry_height: Height
    frozen: bool
    updated_height: Height
    max_txs_per_window: int = 0


class SpendRecord(Record):
    """What a device spent on one block-time day (overwritten when a new day starts)."""

    day: int
    total: Amount


class CounterpartyRecord(Record):
    """A declared counterparty: its kind and the device that vouches for it."""

    address: Address
    kind: str
    device: str
    height: Height


class EscrowRecord(Record):
    """A locked payment."""

    escrow_id: int
    payer: Address
    payee: Address
    amount: Amount
    timeout_height: Height
    created_height: Height


class ChannelRecord(Record):
    """A payment channel; `redeemed` is the cumulative amount paid to the payee so far."""

    channel_id: int
    payer: Address
    payee: Address
    voucher_key: PublicKey
    deposit: Amount
    redeemed: Amount
    nonce: int  # of the newest voucher redeemed (0: none)
    settle_delay: int
    closing_height: Height  # from this height on the channel may be finalized (0: not closing)
    status: str
    opened_height: Height
