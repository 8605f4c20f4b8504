"""Bank genesis: initial allocations; the supply is their sum and never changes afterwards."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ...core.types import address_from_str
from ..base import Context
from .handlers import get_balance, set_balance
from .keys import SUPPLY_KEY
from .messages import MAX_AMOUNT


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Apply {'allocations': [{'address': 'city…', 'amount': int}, …]}."""
    allocations = (section or {}).get("allocations", [])
    supply = 0
    for index, entry in enumerate(allocations):
        address = address_from_str(str(entry.get("address", "")), f"bank.allocations[{index}].address")
        amount = entry.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
            raise ValueError(f"bank.allocations[{index}].amount: expected an integer 1 to {MAX_AMOUNT}, got {amount!r}")
        set_balance(state, address, get_balance(state, address) + amount)
        supply += amount
    if supply > MAX_AMOUNT:
        raise ValueError(f"bank.allocations: total supply {supply} exceeds {MAX_AMOUNT}")
    state.set(SUPPLY_KEY, supply.to_bytes(8, "big"))
