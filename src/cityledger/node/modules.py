"""The module set a city node runs, in genesis order, wired together.

This is where modules meet: each module declares what it needs of another in its own expected.py,
and the real implementation is passed in here (identity's keeper into devices), so modules never
import each other's behaviour and app/ never names a module.
"""

from __future__ import annotations

from functools import lru_cache

from ..modules import bank, batteries, consent, devices, governance, identity, mobility, payments
from ..modules.bank.keeper import KEEPER as BANK
from ..modules.base import Module
from ..modules.devices.keeper import DevicesKeeper
from ..modules.identity.keeper import KEEPER as IDENTITY
from ..modules.payments.keeper import SpendPolicies

DEVICES = DevicesKeeper(IDENTITY)
SPEND_POLICIES = SpendPolicies(DEVICES)


@lru_cache(maxsize=1)
def proof_verifier() -> mobility.ProofVerifier:
    """The one driving-score verifier of this process (its verdict cache serves check_tx and FinalizeBlock)."""
    return mobility.ProofVerifier()


def default_modules() -> list[Module]:
    """Every module of the ledger, in the order their genesis runs."""
    return [governance.MODULE, bank.new_module(spend_guard=SPEND_POLICIES), identity.MODULE, devices.new_module(identity=IDENTITY),
            payments.new_module(bank=BANK, devices=DEVICES),
            consent.new_module(identity=IDENTITY, devices=DEVICES),
            batteries.new_module(identity=IDENTITY, devices=DEVICES),
            mobility.new_module(bank=BANK, identity=IDENTITY, verifier=proof_verifier())]
