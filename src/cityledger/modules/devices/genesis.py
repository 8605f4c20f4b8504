"""Device registry genesis: devices are registered by transactions only, so there is nothing to load."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ..base import Context


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Refuse a genesis section: devices enter the ledger only with their manufacturer's signature."""
    if section:
        raise ValueError("devices: genesis devices are not supported; register them by transaction")
