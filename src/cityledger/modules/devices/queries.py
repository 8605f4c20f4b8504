"""Device registry queries."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...core.types import address_to_str
from .expected import Identity
from .handlers import check_device_message, get_device
from .messages import DeviceRecord


def render_device(record: DeviceRecord) -> dict[str, Any]:
    """A device as queries answer it; owners appear as pseudonymous 'city…' accounts."""
    return {"did": record.did, "kind": record.kind, "model": record.model, "manufacturer": record.manufacturer,
            "owner": address_to_str(record.owner) if record.owner else None,
            "pending_owner": address_to_str(record.pending_owner) if record.pending_owner else None,
            "epoch": record.epoch, "status": record.status, "registered_height": record.registered_height,
            "updated_height": record.updated_height}


def query_device(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A device's record by {'did'}."""
    did = args.get("did", "")
    record = get_device(state, did)
    if record is None:
        raise LookupError(f"did: no device {did!r}")
    return render_device(record)


def query_verify(identity: Identity, state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Does {'did', 'payload' (hex), 'signature' (hex)} verify against the registry now?"""
    try:
        payload = bytes.fromhex(args.get("payload", ""))
        signature = bytes.fromhex(args.get("signature", ""))
    except ValueError:
        raise ValueError("payload, signature: expected hex") from None
    reason = check_device_message(identity, state, args.get("did", ""), payload, signature)
    return {"valid": reason is None, "reason": reason or ""}
