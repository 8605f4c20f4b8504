"""What devices offers other modules: the real implementation of their expected.py Protocols.

node/modules.py builds one with identity's keeper and passes it to the modules that need devices
(batteries, consent, payments), so those modules import only devices' messages, types and errors.
"""

from __future__ import annotations

from ...core.state import StateReader
from .expected import Identity
from .handlers import check_device_message, get_account_device, get_device


class DevicesKeeper:
    """Device records and device-signed message checks, for other modules."""

    get_device = staticmethod(get_device)
    get_account_device = staticmethod(get_account_device)

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def check_device_message(self, state: StateReader, device_did: str, payload: bytes,
                             signature: bytes) -> str | None:
        """None if the active device signed `payload` with its current key, else why not."""
        return check_device_message(self._identity, state, device_did, payload, signature)
