"""Bank queries."""

from __future__ import annotations

from ...core.state import StateReader
from ...core.types import address_from_str
from .handlers import get_balance
from .keys import SUPPLY_KEY


def query_balance(state: StateReader, args: dict[str, str]) -> dict:
    """{'address', 'balance'} of one account."""
    address = address_from_str(args.get("address", ""), "address")
    return {"address": "city" + address.hex(), "balance": get_balance(state, address)}


def query_supply(state: StateReader, args: dict[str, str]) -> dict:
    """The total supply in micro-credits."""
    raw = state.get(SUPPLY_KEY)
    return {"supply": 0 if raw is None else int.from_bytes(raw, "big")}
