"""What bank needs of other modules, as narrow Protocols (cosmos-sdk's expected_keepers).

Whether a sender may pay at all is not only a matter of balance: a device's own account pays only
within its owner's spending policy, which payments keeps. node/modules.py passes payments'
SpendPolicies to `bank.new_module`; bank never imports payments.
"""

from __future__ import annotations

from typing import Protocol

from ..base import Context


class SpendGuard(Protocol):
    """A check of every payment the sender makes, before any credit moves."""

    def check_spend(self, ctx: Context, payee: bytes, amount: int) -> None:
        """Raise a TxError if the sender may not pay `amount` to `payee`."""
        ...
