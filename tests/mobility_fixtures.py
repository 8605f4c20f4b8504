"""Driving-reward fixtures (this module holds no tests): a prover on the shipped circuit, trips
signed by a vehicle's pseudonym and proven once per session, and a city with a programme."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from helpers import CHAIN_ID
from test_identity_fixtures import City
from cityledger.core.keys import PrivateKey
from cityledger.modules.mobility import ClaimTrip, CreateProgramme, circuit_dir
from cityledger.offchain.mobility.circuit import Prover
from cityledger.offchain.mobility.rewards import SignedTrip, build_claim, close_trip, issue_enrollment

PSEUDONYM = PrivateKey(1, b"\x51" * 32)
OTHER_PSEUDONYM = PrivateKey(1, b"\x52" * 32)
OFFICE_SECRET = b"\x53" * 32
VEHICLE = "did:city:vehicle-under-test"  # the office's tag hashes any string; no DID lookup on chain
GOOD = [0, 0, 0, 0, 0, 12]  # 100 points, 12 km
FAIR = [3, 10, 0, 5, 0, 40]  # 100 - 3 - 5 - 2.5 = 89.5 points, 40 km
POOR = [30, 30, 30, 60, 100, 8]  # 100 - 30 - 15 - 15 - 30 - 12.5 -> 0 points
PERIOD_BLOCKS = 1_000
STORED_CLAIMS = Path(__file__).parent / "data" / "mobility_claims.json"


@dataclass
class Trips:
    """Claims proven once: each a ClaimTrip for programme 1 on CHAIN_ID."""

    prover: Prover
    claims: dict[str, ClaimTrip]
    signed: dict[str, SignedTrip]


def prove_trips(work_dir) -> Trips:
    """The prover and one proven claim per named trip (about a second of proving each)."""
    prover = Prover(circuit_dir(), str(work_dir))
    signed, claims = {}, {}
    for name, features in (("good", GOOD), ("fair", FAIR), ("poor", POOR)):
        trip_id = name.encode().ljust(32, b"\x00")
        signed[name] = close_trip(PSEUDONYM, CHAIN_ID, 1, features, trip_id)
        claims[name] = build_claim(prover, signed[name])
    return Trips(prover, claims, signed)


class RewardCity:
    """A city with an accredited transport office, a sponsor's programme 1 and helpers to enroll."""

    def __init__(self, tmp_path, expiry_in: int = 200, **terms) -> None:
        self.city = City(tmp_path)
        self.ledger = self.city.ledger
        self.office = self.city.office("transport", 0x42)
        assert self.city.accredit(self.office.did, "vehicle-registration") == "executed"
        self.sponsor, self.driver, self.stranger = self.city.chain.accounts[0], self.city.chain.accounts[1], \
            self.city.chain.accounts[2]
        values = {"budget": 10_000, "min_score": 60, "reward_per_trip": 100, "reward_per_km": 10,
                  "cap_per_trip": 500, "cap_per_enrollee": 2_000, "period_blocks": PERIOD_BLOCKS,
                  "expiry_height": self.ledger.height() + expiry_in} | terms
        message = CreateProgramme("driving-score-v1", values["budget"], values["min_score"], values["reward_per_trip"],
                                  values["reward_per_km"], values["cap_per_trip"], values["cap_per_enrollee"],
                                  values["period_blocks"], values["expiry_height"], self.office.did)
        self.ledger.send([self.sponsor], [message]).raise_for_error()

    def period(self) -> int:
        return (self.ledger.height() + 1) // PERIOD_BLOCKS

    def enroll(self, account: PrivateKey, pseudonym: PrivateKey = PSEUDONYM, vehicle: str = VEHICLE):
        message = issue_enrollment(self.office.keys[0], OFFICE_SECRET, CHAIN_ID, 1, self.period(), vehicle,
                                   pseudonym.public_key, account.address())
        return self.ledger.send([account], [message])


def stored_claims() -> dict[str, ClaimTrip]:
    """Claims proven once and kept in tests/data (for programme 1 on CHAIN_ID, signed by PSEUDONYM),
    so the hostile sweep and the vectors need no prover; `python tests/mobility_fixtures.py DIR`
    proves them again (after a circuit change)."""
    raw = json.loads(STORED_CLAIMS.read_text())
    return {name: ClaimTrip(1, bytes.fromhex(c["trip_id"]), bytes.fromhex(c["commitment"]),
                            bytes.fromhex(c["commitment_signature"]), c["score_fixed"], c["distance_fixed"],
                            bytes.fromhex(c["proof"])) for name, c in raw.items()}


def write_stored_claims(work_dir) -> None:
    """Prove the named trips and write them to STORED_CLAIMS."""
    trips = prove_trips(work_dir)
    out = {name: {"trip_id": c.trip_id.hex(), "commitment": c.commitment.hex(),
                  "commitment_signature": c.commitment_signature.hex(), "score_fixed": c.score_fixed,
                  "distance_fixed": c.distance_fixed, "proof": c.proof.hex()} for name, c in trips.claims.items()}
    STORED_CLAIMS.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    import sys
    import tempfile

    write_stored_claims(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
