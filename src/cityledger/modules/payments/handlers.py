"""Escrow and payment-channel state transitions.

Every locked credit sits in bank's PAYMENTS_ACCOUNT, moved there and back through the Bank
keeper; LOCKED_KEY counts them, and the invariant checks the count against the escrows and the
channels' unpaid deposits. A payment from a device account passes its owner's policy first.
"""

from __future__ import annotations

import msgspec

from ...core.encoding import decoder, encode
from ...core.keys import PUBLIC_KEY_LEN
from ...core.state import StateReader
from ...core.types import ADDRESS_LEN, Address
from ..bank.messages import MAX_AMOUNT
from ..base import Context
from .errors import (
    ERR_BAD_VOUCHER,
    ERR_CLOSING,
    ERR_INVALID,
    ERR_NOT_PARTY,
    ERR_OVER_DEPOSIT,
    ERR_SETTLED,
    ERR_STALE_VOUCHER,
    ERR_TOO_EARLY,
    ERR_UNKNOWN_CHANNEL,
    ERR_UNKNOWN_ESCROW,
    ERR_WINDOW_CLOSED,
)
from .expected import Bank, Devices
from .keys import LOCKED_KEY, NEXT_CHANNEL_ID_KEY, NEXT_ESCROW_ID_KEY, PAYMENTS_ACCOUNT, channel_key, escrow_key
from .messages import (
    MAX_ESCROW_BLOCKS,
    MAX_NONCE,
    MAX_SETTLE_DELAY_BLOCKS,
    MIN_SETTLE_DELAY_BLOCKS,
    STATUS_CLOSING,
    STATUS_OPEN,
    STATUS_SETTLED,
    ChannelRecord,
    CloseChannel,
    EscrowRecord,
    FinalizeChannel,
    LockEscrow,
    OpenChannel,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    StartClose,
    TopUpChannel,
)
from .policy import check_device_spend
from .vouchers import verify_voucher

_ESCROW = decoder(EscrowRecord)
_CHANNEL = decoder(ChannelRecord)
MAX_ID = 2**63 - 1


# -- reads ---------------------------------------------------------------------------------------

def decode_escrow(raw: bytes) -> EscrowRecord:
    """An escrow from its stored bytes."""
    return _ESCROW.decode_lenient(raw)


def decode_channel(raw: bytes) -> ChannelRecord:
    """A channel from its stored bytes."""
    return _CHANNEL.decode_lenient(raw)


def get_escrow(state: StateReader, escrow_id: int) -> EscrowRecord | None:
    """An escrow by id, or None."""
    if not 0 < escrow_id <= MAX_ID:
        return None
    raw = state.get(escrow_key(escrow_id))
    return None if raw is None else decode_escrow(raw)


def get_channel(state: StateReader, channel_id: int) -> ChannelRecord | None:
    """A channel by id, or None."""
    if not 0 < channel_id <= MAX_ID:
        return None
    raw = state.get(channel_key(channel_id))
    return None if raw is None else decode_channel(raw)


def get_counter(state: StateReader, key: bytes) -> int:
    """A stored counter (0 if never written)."""
    raw = state.get(key)
    return 0 if raw is None else int.from_bytes(raw, "big")


def get_locked(state: StateReader) -> int:
    """Credits locked in escrows and channels, all held by PAYMENTS_ACCOUNT."""
    return get_counter(state, LOCKED_KEY)


def compute_channel_balance(channel: ChannelRecord) -> int:
    """What a channel still holds: its deposit less what was paid out (0 once settled)."""
    return 0 if channel.status == STATUS_SETTLED else channel.deposit - channel.redeemed


# -- money in and out ----------------------------------------------------------------------------

def _next_id(ctx: Context, key: bytes) -> int:
    value = get_counter(ctx.state, key) + 1
    ctx.state.set(key, value.to_bytes(8, "big"))
    return value


def _lock(bank: Bank, ctx: Context, amount: int) -> None:
    """Move `amount` from the sender into the payments account."""
    bank.send(ctx.state, ctx.sender, PAYMENTS_ACCOUNT, amount)
    ctx.state.set(LOCKED_KEY, (get_locked(ctx.state) + amount).to_bytes(8, "big"))


def _unlock(bank: Bank, ctx: Context, to: bytes, amount: int) -> None:
    """Pay `amount` out of the payments account (nothing if zero)."""
    if amount:
        bank.send(ctx.state, PAYMENTS_ACCOUNT, to, amount)
        ctx.state.set(LOCKED_KEY, (get_locked(ctx.state) - amount).to_bytes(8, "big"))


def _check_payment(payee: bytes, amount: int, field: str) -> None:
    if len(payee) != ADDRESS_LEN:
        raise ERR_INVALID(f"payee: expected a {ADDRESS_LEN}-byte address, got {len(payee)} bytes", "payee")
    if payee == PAYMENTS_ACCOUNT:  # credits paid there would be locked for good, owned by no one
        raise ERR_INVALID("payee: expected an account, not the payments module's own", "payee")
    if not 0 < amount <= MAX_AMOUNT:
        raise ERR_INVALID(f"{field}: expected 1 to {MAX_AMOUNT} micro-credits, got {amount}", field)


# -- escrow --------------------------------------------------------------------------------------

def process_lock_escrow(bank: Bank, devices: Devices, ctx: Context, msg: LockEscrow) -> None:
    """Lock an amount for a payee until the payer releases it or takes it back after the timeout."""
    # Check: a payee other than the sender, an amount, a timeout ahead within range; the device policy.
    _check_payment(msg.payee, msg.amount, "amount")
    if msg.payee == ctx.sender:
        raise ERR_INVALID("payee: expected another account than the sender", "payee")
    if not ctx.height < msg.timeout_height <= ctx.height + MAX_ESCROW_BLOCKS:
        raise ERR_INVALID(f"timeout_height: expected {ctx.height + 1} to {ctx.height + MAX_ESCROW_BLOCKS}, "
                          f"got {msg.timeout_height}", "timeout_height")
    check_device_spend(devices, ctx, msg.payee, msg.amount)
    _lock(bank, ctx, msg.amount)
    escrow_id = _next_id(ctx, NEXT_ESCROW_ID_KEY)
    record = EscrowRecord(escrow_id, Address(bytes(ctx.sender)), Address(bytes(msg.payee)), msg.amount,
                          msg.timeout_height, ctx.height)
    ctx.state.set(escrow_key(escrow_id), encode(record))
    ctx.emit("payments_escrow_locked", escrow_id=escrow_id, payer=ctx.sender, payee=msg.payee, amount=msg.amount)


def _payer_escrow(ctx: Context, escrow_id: int) -> EscrowRecord:
    record = get_escrow(ctx.state, escrow_id)
    if record is None:
        raise ERR_UNKNOWN_ESCROW(f"escrow_id: no escrow {escrow_id}", "escrow_id")
    if record.payer != ctx.sender:
        raise ERR_NOT_PARTY(f"sender: only the payer of escrow {escrow_id} may do this", "escrow_id")
    return record


def process_release_escrow(bank: Bank, ctx: Context, msg: ReleaseEscrow) -> None:
    """The payer pays the escrow to its payee."""
    record = _payer_escrow(ctx, msg.escrow_id)
    _unlock(bank, ctx, record.payee, record.amount)
    ctx.state.delete(escrow_key(record.escrow_id))
    ctx.emit("payments_escrow_released", escrow_id=record.escrow_id, payee=record.payee, amount=record.amount)


def process_refund_escrow(bank: Bank, ctx: Context, msg: RefundEscrow) -> None:
    """The payer takes the escrow back, from its timeout height on."""
    record = _payer_escrow(ctx, msg.escrow_id)
    if ctx.height < record.timeout_height:
        raise ERR_TOO_EARLY(f"escrow_id: refundable from height {record.timeout_height}, now {ctx.height}",
                            "escrow_id")
    _unlock(bank, ctx, record.payer, record.amount)
    ctx.state.delete(escrow_key(record.escrow_id))
    ctx.emit("payments_escrow_refunded", escrow_id=record.escrow_id, payer=record.payer, amount=record.amount)


# -- channels ------------------------------------------------------------------------------------

def process_open_channel(bank: Bank, devices: Devices, ctx: Context, msg: OpenChannel) -> None:
    """Open a channel: the deposit moves into the payments account; vouchers spend it off chain."""
    # Check: payee, deposit, window, and a voucher key that is one of the sender's own; the policy.
    _check_payment(msg.payee, msg.deposit, "deposit")
    if msg.payee == ctx.sender:
        raise ERR_INVALID("payee: expected another account than the sender", "payee")
    if not MIN_SETTLE_DELAY_BLOCKS <= msg.settle_delay <= MAX_SETTLE_DELAY_BLOCKS:
        raise ERR_INVALID(f"settle_delay: expected {MIN_SETTLE_DELAY_BLOCKS} to {MAX_SETTLE_DELAY_BLOCKS} "
                          f"blocks, got {msg.settle_delay}", "settle_delay")
    key = msg.voucher_key
    if PUBLIC_KEY_LEN.get(key.scheme) != len(key.key) or ctx.signer is None or key not in ctx.signer.keys:
        raise ERR_INVALID("voucher_key: expected one of the sender's own keys", "voucher_key")
    check_device_spend(devices, ctx, msg.payee, msg.deposit)
    _lock(bank, ctx, msg.deposit)
    channel_id = _next_id(ctx, NEXT_CHANNEL_ID_KEY)
    record = ChannelRecord(channel_id, Address(bytes(ctx.sender)), Address(bytes(msg.payee)), key, msg.deposit, 0,
                           0, msg.settle_delay, 0, STATUS_OPEN, ctx.height)
    ctx.state.set(channel_key(channel_id), encode(record))
    ctx.emit("payments_channel_opened", channel_id=channel_id, payer=ctx.sender, payee=msg.payee,
             deposit=msg.deposit)


def _live_channel(ctx: Context, channel_id: int) -> ChannelRecord:
    record = get_channel(ctx.state, channel_id)
    if record is None:
        raise ERR_UNKNOWN_CHANNEL(f"channel_id: no channel {channel_id}", "channel_id")
    if record.status == STATUS_SETTLED:
        raise ERR_SETTLED(f"channel_id: channel {channel_id} is settled", "channel_id")
    return record


def _save(ctx: Context, record: ChannelRecord, **changes) -> ChannelRecord:
    record = msgspec.structs.replace(record, **changes)
    ctx.state.set(channel_key(record.channel_id), encode(record))
    return record


def process_top_up(bank: Bank, devices: Devices, ctx: Context, msg: TopUpChannel) -> None:
    """The payer adds to an open channel's deposit."""
    # Check: the payer's open (not closing) channel; the amount; the device policy.
    record = _live_channel(ctx, msg.channel_id)
    if record.payer != ctx.sender:
        raise ERR_NOT_PARTY(f"sender: only the payer of channel {msg.channel_id} tops it up", "channel_id")
    if record.status != STATUS_OPEN:
        raise ERR_CLOSING(f"channel_id: channel {msg.channel_id} is closing", "channel_id")
    _check_payment(record.payee, msg.amount, "amount")
    if record.deposit + msg.amount > MAX_AMOUNT:
        raise ERR_INVALID(f"amount: the deposit would exceed {MAX_AMOUNT}", "amount")
    check_device_spend(devices, ctx, record.payee, msg.amount)
    _lock(bank, ctx, msg.amount)
    _save(ctx, record, deposit=record.deposit + msg.amount)
    ctx.emit("payments_channel_topped_up", channel_id=record.channel_id, amount=msg.amount)


def check_redeemable(record: ChannelRecord, chain_id: str, height: int, amount: int, nonce: int,
                     signature: bytes) -> int:
    """What a voucher adds over the channel's newest redeemed one at `height`; raise the TxError the
    chain would give unless it would redeem it (the payee's pre-check over REST runs this too)."""
    # Check: the channel is unsettled and its challenge window (if closing) still runs; the
    # voucher is newer, covered by the deposit, and signed by the channel's voucher key.
    if record.status == STATUS_SETTLED:
        raise ERR_SETTLED(f"channel_id: channel {record.channel_id} is settled", "channel_id")
    if record.status == STATUS_CLOSING and height >= record.closing_height:
        raise ERR_WINDOW_CLOSED(f"channel_id: the challenge window ended at height {record.closing_height}",
                                "channel_id")
    if not 0 < nonce <= MAX_NONCE or nonce <= record.nonce:
        raise ERR_STALE_VOUCHER(f"nonce: expected above {record.nonce} (the newest redeemed), got {nonce}", "nonce")
    if not record.redeemed <= amount:
        raise ERR_STALE_VOUCHER(f"amount: {amount} is below the {record.redeemed} already redeemed", "amount")
    if amount > record.deposit:
        raise ERR_OVER_DEPOSIT(f"amount: {amount} exceeds the deposit of {record.deposit}", "amount")
    if not verify_voucher(record.voucher_key, chain_id, record.channel_id, amount, nonce, signature):
        raise ERR_BAD_VOUCHER("signature: not the payer's voucher for this chain, channel, amount and nonce",
                              "signature")
    return amount - record.redeemed


def _redeem(bank: Bank, ctx: Context, record: ChannelRecord, amount: int, nonce: int,
            signature: bytes) -> ChannelRecord:
    """Pay the payee what a newer voucher adds; raise unless the voucher is valid and newer."""
    check_redeemable(record, ctx.chain_id, ctx.height, amount, nonce, signature)
    _unlock(bank, ctx, record.payee, amount - record.redeemed)
    ctx.emit("payments_voucher_redeemed", channel_id=record.channel_id, amount=amount, nonce=nonce,
             paid=amount - record.redeemed)
    return _save(ctx, record, redeemed=amount, nonce=nonce)


def _payee_channel(ctx: Context, channel_id: int) -> ChannelRecord:
    record = _live_channel(ctx, channel_id)
    if record.payee != ctx.sender:
        raise ERR_NOT_PARTY(f"sender: only the payee of channel {channel_id} may do this", "channel_id")
    return record


def process_redeem(bank: Bank, ctx: Context, msg: RedeemVoucher) -> None:
    """The payee redeems its newest voucher; the channel stays open."""
    record = _payee_channel(ctx, msg.channel_id)
    _redeem(bank, ctx, record, msg.amount, msg.nonce, msg.signature)


def _settle(bank: Bank, ctx: Context, record: ChannelRecord) -> None:
    """Return the unpaid deposit to the payer and mark the channel settled for good."""
    refund = record.deposit - record.redeemed
    _unlock(bank, ctx, record.payer, refund)
    _save(ctx, record, status=STATUS_SETTLED)
    ctx.emit("payments_channel_settled", channel_id=record.channel_id, paid=record.redeemed, refunded=refund)


def process_close(bank: Bank, ctx: Context, msg: CloseChannel) -> None:
    """The payee settles at once, with a last voucher unless the signature is empty."""
    record = _payee_channel(ctx, msg.channel_id)
    if msg.signature:
        record = _redeem(bank, ctx, record, msg.amount, msg.nonce, msg.signature)
    _settle(bank, ctx, record)


def process_start_close(ctx: Context, msg: StartClose) -> None:
    """The payer starts the challenge window of settle_delay blocks."""
    record = _live_channel(ctx, msg.channel_id)
    if record.payer != ctx.sender:
        raise ERR_NOT_PARTY(f"sender: only the payer of channel {msg.channel_id} starts its close", "channel_id")
    if record.status != STATUS_OPEN:
        raise ERR_CLOSING(f"channel_id: channel {msg.channel_id} is already closing", "channel_id")
    record = _save(ctx, record, status=STATUS_CLOSING, closing_height=ctx.height + record.settle_delay)
    ctx.emit("payments_channel_closing", channel_id=record.channel_id, closing_height=record.closing_height)


def process_finalize(bank: Bank, ctx: Context, msg: FinalizeChannel) -> None:
    """Either party settles a channel whose challenge window has ended."""
    record = _live_channel(ctx, msg.channel_id)
    if ctx.sender not in (record.payer, record.payee):
        raise ERR_NOT_PARTY(f"sender: not a party of channel {msg.channel_id}", "channel_id")
    if record.status != STATUS_CLOSING or ctx.height < record.closing_height:
        when = f"height {record.closing_height}" if record.status == STATUS_CLOSING else "a start_close"
        raise ERR_TOO_EARLY(f"channel_id: channel {msg.channel_id} may be finalized only after {when}",
                            "channel_id")
    _settle(bank, ctx, record)
