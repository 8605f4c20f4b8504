"""What consent needs of other modules, as narrow Protocols (cosmos-sdk's expected_keepers).

A data set names a device its owner holds (the devices module's record says who), a consent names
a consumer DID, and anchors come from organisation DIDs accredited through governance (identity's
state). node/modules.py passes the real implementations; tests may pass any object that fits.
"""

from __future__ import annotations

from typing import Protocol

from ...core.state import StateReader
from ..devices.messages import DeviceRecord
from ..identity.messages import DidRecord


class Identity(Protocol):
    """The identity module as consent uses it: DID records and accreditations."""

    def get_did(self, state: StateReader, did: str) -> DidRecord | None:
        """A DID's record, or None."""
        ...

    def is_accredited(self, state: StateReader, did: str, credential_type: str) -> bool:
        """True if `did` is an active organisation accredited for `credential_type`."""
        ...


class Devices(Protocol):
    """The devices module as consent uses it: who owns a device, and whether it is active."""

    def get_device(self, state: StateReader, did: str) -> DeviceRecord | None:
        """A device's record, or None."""
        ...
