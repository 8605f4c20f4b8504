"""The module set a city node runs, in genesis order."""

from __future__ import annotations

from ..modules.base import Module


def default_modules() -> list[Module]:
    """Every module of the ledger, in the order their genesis runs."""
    from ..modules import bank, devices, governance, identity

    return [governance.MODULE, bank.MODULE, identity.MODULE, devices.MODULE]
