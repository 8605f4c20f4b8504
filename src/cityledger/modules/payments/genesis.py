"""Payments genesis: escrows, channels and policies enter by transaction only."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ..base import Context


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Refuse a genesis section: locked credits must come out of bank balances by transaction."""
    if section:
        raise ValueError("payments: genesis escrows, channels or policies are not supported; create them by "
                         "transaction")
