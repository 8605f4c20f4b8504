"""Bank state transitions: transfer and multi-send. Total supply never changes after genesis."""

from __future__ import annotations

from ...core.accounts import EMPTY_VALUE, account_key, encode_account, pack_account, read_account, unpack_account
from ...core.state import Overlay, StateReader
from ...core.types import ADDRESS_LEN
from ..base import Context
from .expected import SpendGuard
from .errors import (
    ERR_INSUFFICIENT_FUNDS,
    ERR_INVALID_ADDRESS,
    ERR_INVALID_AMOUNT,
    ERR_OVERFLOW,
    ERR_TOO_MANY_OUTPUTS,
)
from .messages import MAX_AMOUNT, MAX_OUTPUTS, MultiSend, Transfer


def get_balance(state: StateReader, address: bytes) -> int:
    """An account's balance in micro-credits (0 if it never held any)."""
    return read_account(state, address).balance


def set_balance(state: Overlay, address: bytes, amount: int) -> None:
    """Write a balance into the address's account record, keeping its nonce (a record left with
    nonce and balance both zero is deleted, so empty accounts cost no state)."""
    state.writes[account_key(address)] = encode_account(read_account(state, address).nonce, amount)


def _check_output(to: bytes, amount: int, field: str) -> None:
    if len(to) != ADDRESS_LEN:
        raise ERR_INVALID_ADDRESS(f"{field}.to: expected a {ADDRESS_LEN}-byte address, got {len(to)} bytes",
                                  f"{field}.to")
    if not 0 < amount <= MAX_AMOUNT:
        raise ERR_INVALID_AMOUNT(f"{field}.amount: expected 1 to {MAX_AMOUNT} micro-credits, got {amount}",
                                 f"{field}.amount")


def move(ctx: Context, to: bytes, amount: int) -> None:
    """Debit the sender and credit `to`; raise if the sender cannot pay."""
    state = ctx.state
    sender_key = account_key(ctx.sender)
    raw = state.get(sender_key)
    nonce, balance = EMPTY_VALUE if raw is None else unpack_account(raw)
    # Check: the sender holds enough.
    if balance < amount:
        raise ERR_INSUFFICIENT_FUNDS(f"amount: {amount} exceeds the sender's balance of {balance}", "amount")
    state.writes[sender_key] = encode_account(nonce, balance - amount)
    recipient_key = account_key(to)
    raw = state.get(recipient_key)  # after the debit: a payment to oneself sees it
    nonce, balance = EMPTY_VALUE if raw is None else unpack_account(raw)
    credited = balance + amount
    # Check: no balance overflows (cannot happen while supply <= MAX_AMOUNT, but never trust it).
    if credited > MAX_AMOUNT:
        raise ERR_OVERFLOW(f"to: balance would exceed {MAX_AMOUNT}", "to")
    state.writes[recipient_key] = pack_account(nonce, credited)  # credited > 0: never deleted


def process_transfer(guard: SpendGuard | None, ctx: Context, msg: Transfer) -> None:
    """Transfer micro-credits from the sender to one recipient."""
    _check_output(msg.to, msg.amount, "transfer")
    if guard is not None:
        guard.check_spend(ctx, msg.to, msg.amount)
    move(ctx, msg.to, msg.amount)
    ctx.emit("transfer", sender=ctx.sender, recipient=msg.to, amount=msg.amount)


def process_multi_send(guard: SpendGuard | None, ctx: Context, msg: MultiSend) -> None:
    """Pay several recipients; all outputs succeed or none does."""
    if not 1 <= len(msg.outputs) <= MAX_OUTPUTS:
        raise ERR_TOO_MANY_OUTPUTS(f"outputs: expected 1 to {MAX_OUTPUTS} outputs, got {len(msg.outputs)}",
                                   "outputs")
    for index, output in enumerate(msg.outputs):
        _check_output(output.to, output.amount, f"outputs[{index}]")
    for output in msg.outputs:
        if guard is not None:
            guard.check_spend(ctx, output.to, output.amount)
        move(ctx, output.to, output.amount)
        ctx.emit("transfer", sender=ctx.sender, recipient=output.to, amount=output.amount)
