"""Bank messages (versioned) and stored records."""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.types import Address, Amount

DECIMALS = 6
UNIT = 10**DECIMALS  # 1 credit = 1_000_000 micro-credits
DENOM = "ucity"
MAX_AMOUNT = 2**62  # no balance or supply may exceed this
MAX_OUTPUTS = 256


class Transfer(Message, tag="bank/1.0/transfer"):
    """Move `amount` micro-credits from the sender to `to`."""

    to: Address
    amount: Amount


class Output(Record):
    """One recipient of a multi-send."""

    to: Address
    amount: Amount


class MultiSend(Message, tag="bank/1.0/multi_send"):
    """Pay several recipients from the sender in one message."""

    outputs: list[Output]


class Allocation(Record):
    """A genesis balance."""

    address: Address
    amount: Amount
