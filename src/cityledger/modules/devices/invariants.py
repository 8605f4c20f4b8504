"""Device registry invariants: a device's DID exists and is active exactly while the device is, its
manufacturer is an organisation DID, and ownership fields are accounts that tell one story."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from ...core.types import ADDRESS_LEN
from ..identity.messages import KIND_DEVICE, KIND_ORGANISATION
from .expected import Identity
from .handlers import decode_device
from .keys import DEVICES_PREFIX
from .messages import STATUS_ACTIVE, STATUS_DECOMMISSIONED, DeviceRecord


def check_devices(identity: Identity, state: PrefixReader) -> None:
    """Raise InvariantBroken on a device whose DID disagrees with it, or a transfer without an owner."""
    for _, raw in state.iter_prefix(DEVICES_PREFIX):
        record = decode_device(raw)
        did = identity.get_did(state, record.did)
        if did is None or did.kind != KIND_DEVICE:
            raise InvariantBroken(f"devices: {record.did} has no device DID")
        if record.status not in (STATUS_ACTIVE, STATUS_DECOMMISSIONED):
            raise InvariantBroken(f"devices: {record.did} has status {record.status!r}")
        if did.deactivated != (record.status == STATUS_DECOMMISSIONED):
            raise InvariantBroken(f"devices: {record.did} is {record.status} but its DID deactivated={did.deactivated}")
        if record.pending_owner and not record.owner:
            raise InvariantBroken(f"devices: {record.did} has a pending transfer but no owner")
        check_ownership(identity, state, record)


def check_ownership(identity: Identity, state: PrefixReader, record: DeviceRecord) -> None:
    """Raise InvariantBroken on a device whose manufacturer or ownership fields do not hold together."""
    manufacturer = identity.get_did(state, record.manufacturer)
    if manufacturer is None or manufacturer.kind != KIND_ORGANISATION:
        raise InvariantBroken(f"devices: {record.did} names manufacturer {record.manufacturer!r}, not an organisation")
    for field, value in (("owner", record.owner), ("pending_owner", record.pending_owner)):
        if value and len(value) != ADDRESS_LEN:
            raise InvariantBroken(f"devices: {record.did} has a {len(value)}-byte {field}")
    if record.pending_owner and record.pending_owner == record.owner:
        raise InvariantBroken(f"devices: {record.did} is offered to its own owner")
    # Each bind or accepted transfer sets an owner and counts one epoch; nothing else changes them.
    if bool(record.owner) != (record.epoch > 0) or record.epoch < 0:
        raise InvariantBroken(f"devices: {record.did} has owner {record.owner.hex() or 'none'} at epoch {record.epoch}")
    if record.status == STATUS_DECOMMISSIONED and record.pending_owner:
        raise InvariantBroken(f"devices: decommissioned {record.did} still has a pending transfer")
