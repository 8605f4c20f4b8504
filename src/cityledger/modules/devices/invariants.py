"""Device registry invariants: a device's DID exists and is active exactly while the device is."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from ..identity.messages import KIND_DEVICE
from .expected import Identity
from .handlers import decode_device
from .keys import DEVICES_PREFIX
from .messages import STATUS_ACTIVE, STATUS_DECOMMISSIONED


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
