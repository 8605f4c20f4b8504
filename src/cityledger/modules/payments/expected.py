"""What payments needs of other modules, as narrow Protocols (cosmos-sdk's expected_keepers).

Credits live in bank's account records and only bank writes them: payments moves them through
`Bank`, whose real implementation (modules/bank/keeper.py) node/modules.py passes to `new_module`.
Who owns a device, and whether it is active, is the devices registry's to say: `Devices`.
"""

from __future__ import annotations

from typing import Protocol

from ...core.keys import Signer
from ...core.state import Overlay, StateReader
from ..devices.messages import DeviceRecord


class Bank(Protocol):
    """The bank as payments uses it: read a balance, move credits between two accounts."""

    def get_balance(self, state: StateReader, address: bytes) -> int:
        """An account's balance in micro-credits."""
        ...

    def send(self, state: Overlay, sender: bytes, recipient: bytes, amount: int) -> None:
        """Move `amount` from `sender` to `recipient`; raise bank's TxError if it cannot."""
        ...


class Devices(Protocol):
    """The device registry as payments uses it."""

    def get_device(self, state: StateReader, did: str) -> DeviceRecord | None:
        """A device's record, or None."""
        ...

    def get_account_device(self, state: StateReader, account: bytes, signer: Signer | None) -> DeviceRecord | None:
        """The device whose own account `account` (the address of `signer`) is, or None."""
        ...
