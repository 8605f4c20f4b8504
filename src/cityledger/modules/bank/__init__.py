"""bank: the city credit — integer micro-credit amounts (6 decimals), transfer and multi-send."""

from ...core.statekeys import PREFIX_BANK
from ..base import Module
from .errors import ERRORS
from .genesis import init_genesis
from .handlers import get_balance, process_multi_send, process_transfer
from .invariants import check_supply
from .messages import DECIMALS, DENOM, UNIT, MultiSend, Output, Transfer
from .queries import query_balance, query_supply

MODULE = Module(
    name="bank",
    prefix=PREFIX_BANK,
    errors=ERRORS,
    handlers={Transfer: process_transfer, MultiSend: process_multi_send},
    queries={"balance": query_balance, "supply": query_supply},
    init_genesis=init_genesis,
    invariants=(check_supply,),
)

__all__ = ["DECIMALS", "DENOM", "MODULE", "MultiSend", "Output", "Transfer", "UNIT", "get_balance"]
