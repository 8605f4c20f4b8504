"""/devices/owned and /devices/list: an account's devices, or every device, paged by {'after'} (modules/paging.py)."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...core.types import address_from_str
from ..paging import scan_owned
from .handlers import decode_device
from .keys import DEVICES_PREFIX
from .queries import render_device


def query_owned(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The devices whose owner or pending owner is {'owner'} (a 'city…' account)."""
    owner = address_from_str(args.get("owner", ""), "owner")
    return scan_owned(state, DEVICES_PREFIX, args, decode_device,
                      lambda record: owner in (record.owner, record.pending_owner), render_device)


def query_list(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Every registered device in DID order (the explorer's city-wide list): DID, kind, status, heights."""
    return scan_owned(state, DEVICES_PREFIX, args, decode_device, lambda record: True, lambda record: {
        "did": record.did, "kind": record.kind, "status": record.status,
        "registered_height": record.registered_height, "updated_height": record.updated_height})
