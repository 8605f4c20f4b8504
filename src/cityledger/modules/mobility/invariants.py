"""Mobility invariants: the programmes' remaining budgets add up to no more than the mobility
account holds, and no programme paid out more than it was given."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .expected import Bank
from .handlers import decode_programme
from .keys import MOBILITY_ACCOUNT, PROGRAMMES_PREFIX


def check_mobility(bank: Bank, state: PrefixReader) -> None:
    """Raise InvariantBroken if budgets and the account that holds them disagree."""
    total = 0
    for _, raw in state.iter_prefix(PROGRAMMES_PREFIX):
        programme = decode_programme(raw)
        if not 0 <= programme.remaining <= programme.budget:
            raise InvariantBroken(f"mobility: programme {programme.programme_id} has {programme.remaining} left of "
                                  f"{programme.budget}")
        if programme.withdrawn and programme.remaining:
            raise InvariantBroken(f"mobility: withdrawn programme {programme.programme_id} still holds "
                                  f"{programme.remaining}")
        total += programme.remaining
    # Anyone may send credits to the mobility account, so it may hold more, never less.
    held = bank.get_balance(state, MOBILITY_ACCOUNT)
    if held < total:
        raise InvariantBroken(f"mobility: the mobility account holds {held}, less than the {total} budgets left")
