"""/devices/owned: the devices an account owns or is offered, paged by {'after'} (modules/paging.py)."""

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
