"""The spam limits of a feeless ledger, as governed parameters, and a device's share of them.

app/quotas.py enforces them for every sender (through the module's `sender_quota` hook, once per
window per sender); this module declares them, because a device's bound is part of its owner's
spending policy (`SetPolicy.max_txs_per_window`).
"""

from __future__ import annotations

from ...core.keys import Signer
from ...core.state import StateReader
from ...core.statekeys import PREFIX_PAYMENTS, make_key
from ...core.types import Address
from ..base import Params, SenderQuota
from .expected import Devices
from .messages import MAX_QUOTA_TXS
from .policy import get_policy

_PARAM = 0x08

WINDOW_BLOCKS = "payments.quota_window_blocks"
TXS_PER_WINDOW = "payments.quota_txs_per_window"
DEVICE_TXS_PER_WINDOW = "payments.quota_device_txs_per_window"
MAX_PENDING = "payments.quota_max_pending"

# Defaults sized so that a city service (an issuer publishing a batch, a gateway anchoring, an
# operator redeeming) never meets them, while one account can take at most a tenth of a window's
# capacity; a device, unless its owner's policy says otherwise, ten txs per block on average.
PARAMS = {
    WINDOW_BLOCKS: (10, 0, 1_000_000),  # 0 turns the window quota off
    TXS_PER_WINDOW: (5_000, 1, MAX_QUOTA_TXS),
    DEVICE_TXS_PER_WINDOW: (100, 1, MAX_QUOTA_TXS),
    MAX_PENDING: (5_000, 1, MAX_QUOTA_TXS),
}


def param_key(name: str) -> bytes:
    """Key of one of the module's governed parameters."""
    return make_key(PREFIX_PAYMENTS, _PARAM, name.encode())


def read_sender_quota(devices: Devices, state: StateReader, params: Params, sender: Address,
                      signer: Signer | None) -> SenderQuota:
    """A sender's quota: the chain's, or for a device account the lower bound of its owner's policy."""
    window, max_pending = params.get(WINDOW_BLOCKS), params.get(MAX_PENDING)
    if window == 0:
        return SenderQuota(0, 0, max_pending)
    per_window = params.get(TXS_PER_WINDOW)
    device = devices.get_account_device(state, sender, signer)
    if device is not None:
        policy = get_policy(state, device.did)
        own = policy.max_txs_per_window if policy is not None and policy.owner == device.owner \
            and policy.epoch == device.epoch else 0
        per_window = min(per_window, own or params.get(DEVICE_TXS_PER_WINDOW))
        max_pending = min(max_pending, per_window)
    return SenderQuota(window, per_window, max_pending)
