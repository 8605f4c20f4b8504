"""Battery passport genesis: passports are opened by transactions only, so there is nothing to load."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ..base import Context


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Refuse a genesis section: a passport enters the ledger only by its accredited manufacturer."""
    if section:
        raise ValueError("batteries: genesis passports are not supported; register them by transaction")
