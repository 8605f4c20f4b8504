"""The gateway's device registry read from the ledger: an active device bound to an owner whose vault
key is registered (consent's register_vault_key) is a DeviceEntry; anything else is unknown, so its
messages are refused and nothing is stored.

    Gateway(..., lookup=LedgerDevices(node.store), ...)
"""

from __future__ import annotations

from ...core.state import StateReader
from ...core.types import address_to_str
from ...modules.consent import get_vault_key
from ...modules.devices import get_device
from ...modules.devices.messages import STATUS_ACTIVE
from ...modules.identity import PURPOSE_AUTHENTICATION
from ...modules.identity.handlers import get_did, keys_for
from .verify import DeviceEntry


class LedgerDevices:
    """DeviceLookup over the committed state: the device's current key, its owner and the owner's vault key."""

    def __init__(self, state: StateReader) -> None:
        self.state = state

    def __call__(self, did: str) -> DeviceEntry | None:
        """The entry of an active, bound device whose owner registered a vault key; else None."""
        device = get_device(self.state, did)
        if device is None or device.status != STATUS_ACTIVE or not device.owner:
            return None
        record = get_did(self.state, did)
        keys = [] if record is None else keys_for(record, PURPOSE_AUTHENTICATION)
        owner = address_to_str(device.owner)
        vault_key = get_vault_key(self.state, owner)
        if not keys or vault_key is None:
            return None
        return DeviceEntry(did, keys[0], owner, vault_key.key)
