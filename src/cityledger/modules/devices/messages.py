"""Device registry messages (versioned) and stored records.

A device is identified by its did:city DID, generated from its own key. Its owner is a
pseudonymous account, bound through an AnonCreds registration credential (see handlers.py).
"""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.keys import PublicKey
from ...core.types import Address, Height

KIND_VEHICLE = "vehicle"
KIND_CHARGER = "charger"
KIND_BATTERY = "battery"
KIND_METER = "meter"
KINDS = (KIND_BATTERY, KIND_CHARGER, KIND_METER, KIND_VEHICLE)
# The credential type that binds a device of each kind to its owner.
BINDING_TYPES = {KIND_VEHICLE: "vehicle-registration", KIND_CHARGER: "device-registration",
                 KIND_BATTERY: "device-registration", KIND_METER: "device-registration"}
MANUFACTURER_TYPE = "device-manufacturer"
STATUS_ACTIVE = "active"
STATUS_DECOMMISSIONED = "decommissioned"
MAX_MODEL_LEN = 64
MAX_PAYLOAD_BYTES = 64 * 1024


class RegisterDevice(Message, tag="devices/1.0/register"):
    """Register a device: its key, signed over by its manufacturer and by the device itself."""

    kind: str
    model: str
    device_key: PublicKey
    manufacturer: str  # DID accredited for "device-manufacturer"
    manufacturer_signature: bytes  # by an assertionMethod key of the manufacturer's DID
    device_signature: bytes  # by device_key: proof that the key is the device's


class BindDevice(Message, tag="devices/1.0/bind"):
    """Bind an unowned device to the sender, proven by a registration credential presentation."""

    device: str
    presentation: bytes


class OfferTransfer(Message, tag="devices/1.0/offer_transfer"):
    """The owner offers the device to `new_owner` (an empty address withdraws the offer)."""

    device: str
    new_owner: Address


class AcceptTransfer(Message, tag="devices/1.0/accept_transfer"):
    """The offered new owner accepts, with a registration credential naming them."""

    device: str
    presentation: bytes


class Decommission(Message, tag="devices/1.0/decommission"):
    """Retire a device for good: its DID is deactivated and its signatures stop verifying."""

    device: str


class RegistrationStatement(Record):
    """What the manufacturer and the device sign at registration."""

    chain_id: str
    kind: str
    model: str
    device_key: PublicKey
    manufacturer: str


class DeviceRecord(Record):
    """A registered device."""

    did: str
    kind: str
    model: str
    manufacturer: str
    owner: Address  # b"" until bound
    pending_owner: Address  # b"" unless a transfer is offered
    epoch: int  # ownership changes so far; binds each ownership proof to one change
    status: str
    registered_height: Height
    updated_height: Height
