"""What bank offers other modules: the real implementation of their expected.py Protocols.

node/modules.py passes KEEPER to the modules that move credits (payments.new_module), so every
write to a balance happens here, in bank's own code, under bank's checks and errors.
"""

from __future__ import annotations

from ...core.accounts import EMPTY_VALUE, account_key, encode_account, pack_account, unpack_account
from ...core.state import Overlay
from ...core.types import ADDRESS_LEN
from .errors import ERR_INSUFFICIENT_FUNDS, ERR_INVALID_ADDRESS, ERR_INVALID_AMOUNT, ERR_OVERFLOW
from .handlers import get_balance
from .messages import MAX_AMOUNT


def send(state: Overlay, sender: bytes, recipient: bytes, amount: int) -> None:
    """Move `amount` micro-credits from `sender` to `recipient`; raise bank's TxError if it cannot."""
    # Check: two addresses and a positive amount within range.
    for field, address in (("sender", sender), ("recipient", recipient)):
        if len(address) != ADDRESS_LEN:
            raise ERR_INVALID_ADDRESS(f"{field}: expected a {ADDRESS_LEN}-byte address, got {len(address)} bytes",
                                      field)
    if not 0 < amount <= MAX_AMOUNT:
        raise ERR_INVALID_AMOUNT(f"amount: expected 1 to {MAX_AMOUNT} micro-credits, got {amount}", "amount")
    sender_key = account_key(sender)
    raw = state.get(sender_key)
    nonce, balance = EMPTY_VALUE if raw is None else unpack_account(raw)
    # Check: the sender holds enough.
    if balance < amount:
        raise ERR_INSUFFICIENT_FUNDS(f"amount: {amount} exceeds the balance of {balance}", "amount")
    state.writes[sender_key] = encode_account(nonce, balance - amount)
    recipient_key = account_key(recipient)
    raw = state.get(recipient_key)  # after the debit: a payment to oneself sees it
    nonce, balance = EMPTY_VALUE if raw is None else unpack_account(raw)
    # Check: no balance overflows (cannot happen while supply <= MAX_AMOUNT, but never trust it).
    if balance + amount > MAX_AMOUNT:
        raise ERR_OVERFLOW(f"recipient: balance would exceed {MAX_AMOUNT}", "recipient")
    state.writes[recipient_key] = pack_account(nonce, balance + amount)


class BankKeeper:
    """Balances and credit movements, for other modules."""

    get_balance = staticmethod(get_balance)
    send = staticmethod(send)


KEEPER = BankKeeper()
