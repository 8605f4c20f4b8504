"""Driving rewards for programs: sponsors' programmes, owners' enrollment and claims, trip scores.

    tx = create_programme(chain_id, sponsor, nonce, budget=10_000_000, min_score=70, reward_per_trip=0,
                          reward_per_km=20_000, cap_per_trip=1_000_000, cap_per_enrollee=20_000_000,
                          period_blocks=400_000, expiry_height=2_000_000, issuer=office_did)
    report = score_samples(samples)                 # the owner's view of a trip: score and why
    trip = close_trip(pseudonym, chain_id, programme_id, report["inputs"])   # on the vehicle
    tx = claim(chain_id, account, nonce, build_claim(Prover(circuit_dir(), work_dir), trip))

A ticket (`Enroll`) and a vehicle's signed trip travel as JSON: `ticket_to_json` / `ticket_from_json`,
`trip_to_json` / `trip_from_json` (bytes in hex). Programme state: Client.get_programmes(),
get_programme(id), get_enrollment(id, account, period), get_claim(id, commitment); whether the chain
would pay a claim now: Client.check_claim(claim_check_body(claim, account)).
"""

from __future__ import annotations

from typing import Any

from ..core.keys import PublicKey, Signer
from ..core.types import address_to_str
from ..modules.mobility import (
    MODEL_DRIVING_SCORE_V1,
    ClaimTrip,
    CreateProgramme,
    Enroll,
    FundProgramme,
    WithdrawProgramme,
)
from ..offchain.mobility.features import Sample, compute_features
from ..offchain.mobility.rewards import SignedTrip
from ..offchain.mobility.score import explain
from ..wire.mobility import ClaimCheckBody
from .txs import KeyOrKeys, sign, to_address


def create_programme(chain_id: str, keys: KeyOrKeys, nonce: int, *, budget: int, min_score: int,
                     reward_per_trip: int, reward_per_km: int, cap_per_trip: int, cap_per_enrollee: int,
                     period_blocks: int, expiry_height: int, issuer: str, model: str = MODEL_DRIVING_SCORE_V1,
                     signer: Signer | None = None) -> bytes:
    """A sponsor's programme: `budget` is escrowed from the sender's account."""
    message = CreateProgramme(model, budget, min_score, reward_per_trip, reward_per_km, cap_per_trip,
                              cap_per_enrollee, period_blocks, expiry_height, issuer)
    return sign(chain_id, keys, nonce, [message], signer=signer)


def fund_programme(chain_id: str, keys: KeyOrKeys, nonce: int, programme_id: int, amount: int, *,
                   signer: Signer | None = None) -> bytes:
    """The sponsor adds to a running programme's budget."""
    return sign(chain_id, keys, nonce, [FundProgramme(programme_id, amount)], signer=signer)


def withdraw_programme(chain_id: str, keys: KeyOrKeys, nonce: int, programme_id: int, *,
                       signer: Signer | None = None) -> bytes:
    """After expiry, the sponsor takes back what the programme did not pay."""
    return sign(chain_id, keys, nonce, [WithdrawProgramme(programme_id)], signer=signer)


def enroll(chain_id: str, keys: KeyOrKeys, nonce: int, ticket: Enroll, *, signer: Signer | None = None) -> bytes:
    """The pseudonymous account enrolls with the transport office's ticket."""
    return sign(chain_id, keys, nonce, [ticket], signer=signer)


def claim(chain_id: str, keys: KeyOrKeys, nonce: int, trip_claim: ClaimTrip, *, signer: Signer | None = None) -> bytes:
    """The enrolled account claims a proven trip's reward."""
    return sign(chain_id, keys, nonce, [trip_claim], signer=signer)


def claim_check_body(trip_claim: ClaimTrip, account: str | bytes) -> ClaimCheckBody:
    """The body of POST /mobility/claims/check: this claim, as `account` would send it."""
    return ClaimCheckBody(account=address_to_str(to_address(account, "account")), programme_id=trip_claim.programme_id,
                          trip_id=trip_claim.trip_id.hex(), commitment=trip_claim.commitment.hex(),
                          commitment_signature=trip_claim.commitment_signature.hex(),
                          score_fixed=trip_claim.score_fixed, distance_fixed=trip_claim.distance_fixed,
                          proof=trip_claim.proof.hex())


def score_samples(samples: list[Sample]) -> dict[str, Any]:
    """A trip's features, model inputs and explained score from the vehicle's 1 Hz samples."""
    features = compute_features(samples)
    inputs = features.model_inputs()
    return {"trip": {name: getattr(features, name) for name in features.__dataclass_fields__},
            "inputs": inputs, **explain(inputs)}


def _hex(raw: dict[str, Any], name: str, size: int | None = None) -> bytes:
    value = raw.get(name)
    try:
        out = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        out = None
    if out is None or (size is not None and len(out) != size):
        raise ValueError(f"{name}: expected {'%d bytes' % size if size else 'bytes'} in hex, got {str(value)[:80]!r}")
    return out


def _int(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if type(value) is not int:
        raise ValueError(f"{name}: expected an integer, got {str(value)[:40]!r}")
    return value


def ticket_to_json(ticket: Enroll) -> dict[str, Any]:
    """An enrollment ticket as JSON."""
    return {"programme_id": ticket.programme_id, "period": ticket.period,
            "pseudonym_key": {"scheme": ticket.pseudonym_key.scheme, "key": ticket.pseudonym_key.key.hex()},
            "vehicle_tag": ticket.vehicle_tag.hex(), "issuer_signature": ticket.issuer_signature.hex()}


def ticket_from_json(raw: Any) -> Enroll:
    """An enrollment ticket from JSON; raise ValueError naming the field."""
    if not isinstance(raw, dict) or not isinstance(raw.get("pseudonym_key"), dict):
        raise ValueError("ticket: expected an object with programme_id, period, pseudonym_key, vehicle_tag, "
                         "issuer_signature")
    key = PublicKey(_int(raw["pseudonym_key"], "scheme"), _hex(raw["pseudonym_key"], "key"))
    return Enroll(_int(raw, "programme_id"), _int(raw, "period"), key, _hex(raw, "vehicle_tag", 32),
                  _hex(raw, "issuer_signature", 64))


def trip_to_json(trip: SignedTrip) -> dict[str, Any]:
    """A vehicle's signed trip as JSON (it holds the trip's features: the owner's, never the chain's)."""
    return {"programme_id": trip.programme_id, "trip_id": trip.trip_id.hex(), "inputs": list(trip.features),
            "commitment": trip.commitment.hex(), "signature": trip.signature.hex()}


def trip_from_json(raw: Any) -> SignedTrip:
    """A vehicle's signed trip from JSON; raise ValueError naming the field."""
    if not isinstance(raw, dict):
        raise ValueError("trip: expected an object with programme_id, trip_id, inputs, commitment, signature")
    inputs = raw.get("inputs")
    if not isinstance(inputs, list) or not all(type(value) is int for value in inputs):
        raise ValueError(f"inputs: expected a list of integers, got {str(inputs)[:80]!r}")
    return SignedTrip(_int(raw, "programme_id"), _hex(raw, "trip_id", 32), inputs, _hex(raw, "commitment", 32),
                      _hex(raw, "signature", 64))
