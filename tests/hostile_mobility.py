"""Hostile baselines for the mobility module (this module holds no tests).

`MobilityTargets` sets up, in a HostileWorld's city, programme 1 (tickets from the accredited
transport office, one period for the whole sweep) and an enrollee whose pseudonym signed the stored
claims, so a claim's hostile copies reach the proof check. The baseline claim is never paid (its
copies all fail a check), so every copy meets the same state; nor is the baseline programme created.
"""

from __future__ import annotations

from typing import Any, Callable

from helpers import CHAIN_ID
from mobility_fixtures import OFFICE_SECRET, PSEUDONYM, stored_claims
from cityledger.core.keys import PrivateKey
from cityledger.modules.mobility import CreateProgramme, FundProgramme, WithdrawProgramme
from cityledger.modules.mobility.messages import MAX_PERIOD_BLOCKS
from cityledger.offchain.mobility.rewards import issue_enrollment


class MobilityTargets:
    """Programme 1 and an enrolled pseudonymous account in a hostile city."""

    def __init__(self, city, sponsor: PrivateKey) -> None:
        self.ledger, self.sponsor = city.ledger, sponsor
        self.office = city.transport_office()
        self.enrollee = PrivateKey(1, b"\x75" * 32)
        self.vehicles = 0
        self.ledger.send([sponsor], [self._programme(1_000)]).raise_for_error()
        self.ledger.send([self.enrollee], [self._ticket(PSEUDONYM)]).raise_for_error()
        self.claim = stored_claims()["good"]

    def _programme(self, budget: int) -> CreateProgramme:
        return CreateProgramme("driving-score-v1", budget, 95, 10, 1, 50, 100, MAX_PERIOD_BLOCKS,
                               self.ledger.height() + 100_000, self.office.did)

    def _ticket(self, pseudonym: PrivateKey):
        self.vehicles += 1
        return issue_enrollment(self.office.keys[0], OFFICE_SECRET, CHAIN_ID, 1, 0, f"did:city:v{self.vehicles}",
                                pseudonym.public_key, self.enrollee.address())

    def baselines(self) -> dict[str, Callable[[], tuple[PrivateKey, Any]]]:
        """Message tag -> (signing key, a well-formed mobility message) in the current state."""
        return {
            # More than the sponsor has: refused at the last check, so a copy with a 0 that is valid
            # (a reward, a threshold) is refused too.
            "mobility/1.0/create_programme": lambda: (self.sponsor, self._programme(2**61)),
            "mobility/1.0/fund_programme": lambda: (self.sponsor, FundProgramme(1, 5)),
            "mobility/1.0/withdraw_programme": lambda: (self.sponsor, WithdrawProgramme(1)),
            "mobility/1.0/enroll": lambda: (self.enrollee, self._ticket(PrivateKey.generate())),
            "mobility/1.0/claim": lambda: (self.enrollee, self.claim),  # 100 points: reaches the proof check
        }
