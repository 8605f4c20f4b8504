"""What payments offers other modules: the real implementation of their expected.py Protocols.

node/modules.py passes SpendPolicies to bank, so a plain transfer from a device's own account
passes the same spending policy as a channel deposit or an escrow: every payment from a device
account is checked against what its owner allowed.
"""

from __future__ import annotations

from ..base import Context
from .expected import Devices
from .policy import check_policy_spend


class SpendPolicies:
    """The device spending policies, as bank checks them before moving a sender's credits."""

    def __init__(self, devices: Devices) -> None:
        self._devices = devices

    def check_spend(self, ctx: Context, payee: bytes, amount: int) -> None:
        """Refuse a payment of the sender that its device policy does not allow (others pass)."""
        # Every bank transfer comes here: a sender that is no device costs one look-up and one read.
        device = self._devices.get_account_device(ctx.state, ctx.sender, ctx.signer)
        if device is not None:
            check_policy_spend(self._devices, ctx, device, payee, amount)
