"""Governance invariants: the consortium is never empty and its threshold is reachable."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .handlers import get_consortium


def check_consortium(state: PrefixReader) -> None:
    """Raise InvariantBroken if the threshold cannot be met."""
    consortium = get_consortium(state)
    if not 1 <= consortium.threshold <= len(consortium.members):
        raise InvariantBroken(f"governance: threshold {consortium.threshold} with {len(consortium.members)} members")
