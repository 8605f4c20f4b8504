"""Bank invariants: the total supply equals the sum of all balances."""

from __future__ import annotations

from ...core.accounts import ACCOUNTS_PREFIX, decode_account
from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .keys import SUPPLY_KEY


def check_supply(state: PrefixReader) -> None:
    """Raise InvariantBroken if the sum of balances differs from the recorded supply."""
    total = sum(decode_account(value).balance for _, value in state.iter_prefix(ACCOUNTS_PREFIX))
    raw = state.get(SUPPLY_KEY)
    supply = 0 if raw is None else int.from_bytes(raw, "big")
    if total != supply:
        raise InvariantBroken(f"bank: sum of balances {total} != total supply {supply}")
