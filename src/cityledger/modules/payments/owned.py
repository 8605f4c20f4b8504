"""/payments/channels_of, /payments/escrows_of: an account's channels and escrows, as payer or payee,
paged by {'after'} (modules/paging.py)."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...core.types import address_from_str
from ..paging import scan_owned
from .handlers import decode_channel, decode_escrow
from .keys import CHANNELS_PREFIX, ESCROWS_PREFIX
from .queries import render_channel, render_escrow


def query_channels_of(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The channels {'account'} pays into or is paid from."""
    account = address_from_str(args.get("account", ""), "account")
    return scan_owned(state, CHANNELS_PREFIX, args, decode_channel,
                      lambda record: account in (record.payer, record.payee), render_channel)


def query_escrows_of(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The open escrows {'account'} locked or is to receive."""
    account = address_from_str(args.get("account", ""), "account")
    return scan_owned(state, ESCROWS_PREFIX, args, decode_escrow,
                      lambda record: account in (record.payer, record.payee), render_escrow)
