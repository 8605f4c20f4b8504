"""Payments invariants: the locked count equals the escrows plus the channels' unpaid deposits,
the payments account holds at least that much, and every channel's numbers hold together."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .expected import Bank
from .handlers import compute_channel_balance, decode_channel, decode_escrow, get_locked
from .keys import CHANNELS_PREFIX, ESCROWS_PREFIX, PAYMENTS_ACCOUNT
from .messages import CHANNEL_STATUSES, STATUS_CLOSING, STATUS_SETTLED


def check_payments(bank: Bank, state: PrefixReader) -> None:
    """Raise InvariantBroken if locked funds and the records that lock them disagree."""
    total = 0
    for _, raw in state.iter_prefix(ESCROWS_PREFIX):
        escrow = decode_escrow(raw)
        if escrow.amount <= 0:
            raise InvariantBroken(f"payments: escrow {escrow.escrow_id} locks {escrow.amount}")
        total += escrow.amount
    for _, raw in state.iter_prefix(CHANNELS_PREFIX):
        channel = decode_channel(raw)
        if channel.status not in CHANNEL_STATUSES:
            raise InvariantBroken(f"payments: channel {channel.channel_id} has status {channel.status!r}")
        if not 0 <= channel.redeemed <= channel.deposit or channel.nonce < 0:
            raise InvariantBroken(f"payments: channel {channel.channel_id} redeemed {channel.redeemed} of "
                                  f"{channel.deposit} at nonce {channel.nonce}")
        # Closing channels have a window's end; open ones have none (settled ones keep theirs).
        if channel.status != STATUS_SETTLED and (channel.status == STATUS_CLOSING) != (channel.closing_height > 0):
            raise InvariantBroken(f"payments: channel {channel.channel_id} is {channel.status} with closing "
                                  f"height {channel.closing_height}")
        total += compute_channel_balance(channel)
    locked = get_locked(state)
    if total != locked:
        raise InvariantBroken(f"payments: escrows and channels hold {total}, the locked count is {locked}")
    # Anyone may send credits to the payments account, so it may hold more, never less.
    held = bank.get_balance(state, PAYMENTS_ACCOUNT)
    if held < locked:
        raise InvariantBroken(f"payments: the payments account holds {held}, less than the {locked} locked")
