"""Mobility genesis: programmes enter by transaction only."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ..base import Context


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Refuse a genesis section: a budget must come out of a sponsor's balance by transaction."""
    if section:
        raise ValueError("mobility: genesis programmes are not supported; create them by transaction")
