"""Every state key of the bank, built in one place."""

from ...core.statekeys import PREFIX_BANK, collection_prefix, make_key

_BALANCE = 0x01
_SUPPLY = 0x02

BALANCES_PREFIX = collection_prefix(PREFIX_BANK, _BALANCE)
SUPPLY_KEY = make_key(PREFIX_BANK, _SUPPLY)


def balance_key(address: bytes) -> bytes:
    """Key of an account's balance."""
    return BALANCES_PREFIX + bytes((len(address),)) + address
