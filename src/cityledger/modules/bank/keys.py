"""Every state key of the bank, built in one place. Balances live in the account records of
core/accounts.py (with each account's nonce); the bank's own collection holds the total supply."""

from ...core.statekeys import PREFIX_BANK, make_key

_SUPPLY = 0x02  # 0x01 held balances before they joined the account record; not reused

SUPPLY_KEY = make_key(PREFIX_BANK, _SUPPLY)
