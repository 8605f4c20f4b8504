"""Consent genesis: data sets and consents enter by transaction only, so there is nothing to load."""

from __future__ import annotations

from typing import Any

from ...core.state import Overlay
from ..base import Context


def init_genesis(state: Overlay, section: Any, ctx: Context) -> None:
    """Refuse a genesis section: a consent is an owner's signed act, never a genesis entry."""
    if section:
        raise ValueError("consent: genesis data sets and consents are not supported; grant them by transaction")
