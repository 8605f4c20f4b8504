"""bank: the city credit — integer micro-credit amounts (6 decimals), transfer and multi-send."""

from functools import partial

from ...core.statekeys import PREFIX_BANK
from ..base import Module
from .errors import ERRORS
from .expected import SpendGuard
from .genesis import init_genesis
from .handlers import get_balance, process_multi_send, process_transfer
from .invariants import check_supply
from .messages import DECIMALS, DENOM, UNIT, MultiSend, Output, Transfer
from .queries import query_balance, query_supply



def new_module(spend_guard: SpendGuard | None = None) -> Module:
    """The bank module; `spend_guard` (payments' device policies) checks every payment a sender makes."""
    return Module(
        name="bank",
        prefix=PREFIX_BANK,
        errors=ERRORS,
        handlers={Transfer: partial(process_transfer, spend_guard),
                  MultiSend: partial(process_multi_send, spend_guard)},
        queries={"balance": query_balance, "supply": query_supply},
        init_genesis=init_genesis,
        invariants=(check_supply,),
    )


# The bank alone, with no spending policies: for tests of the ledger without the city's modules.
MODULE = new_module()

__all__ = ["DECIMALS", "DENOM", "MODULE", "MultiSend", "Output", "Transfer", "UNIT", "SpendGuard", "get_balance", "new_module"]
