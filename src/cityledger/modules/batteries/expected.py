"""What batteries needs of other modules, as narrow Protocols (cosmos-sdk's expected_keepers).

A passport's battery and the vehicle it is installed in are devices (devices module); the roles
of the organisations that act on a passport are accreditations, and their DIDs' controllers are
who may act for them (identity module). node/modules.py passes the real implementations.
"""

from __future__ import annotations

from typing import Protocol

from ...core.state import StateReader
from ..devices.messages import DeviceRecord
from ..identity.messages import DidRecord


class Identity(Protocol):
    """The identity module as batteries uses it: DID records and the trusted-issuer registry."""

    def get_did(self, state: StateReader, did: str) -> DidRecord | None:
        """A DID's record, or None."""
        ...

    def is_accredited(self, state: StateReader, did: str, credential_type: str) -> bool:
        """True if `did` is an active organisation accredited (by governance) for `credential_type`."""
        ...


class Devices(Protocol):
    """The device registry as batteries uses it: device records and device-signed messages."""

    def get_device(self, state: StateReader, did: str) -> DeviceRecord | None:
        """A device's record, or None."""
        ...

    def check_device_message(self, state: StateReader, device_did: str, payload: bytes,
                             signature: bytes) -> str | None:
        """None if the active device signed `payload` with its current key, else why not."""
        ...
