"""The three off-chain parties of a reward claim: the transport office issues enrollment tickets,
the vehicle commits to a trip's features at trip end, the owner's device proves and claims.

Who can link what: the office sees which vehicle asked for a ticket for which pseudonym key (it
checked the owner's vehicle registration); the chain and the sponsor see only the pseudonym's
account, its key and a vehicle tag that is a keyed hash (the office's secret) of the vehicle,
programme and period — equal for one vehicle within a period, unlinkable across periods and
programmes without the office's secret.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass

from ...core.encoding import encode
from ...core.hashing import sha256
from ...core.keys import PrivateKey, PublicKey
from ...core.state import StateReader
from ...modules.identity.presentations import verify_presentation
from ...modules.mobility import ClaimTrip, Enroll, sign_commitment, sign_ticket
from .circuit import Prover, compute_commitment, new_salt

TRIP_ID_BYTES = 32
MAX_TICKET_REQUEST_AGE_BLOCKS = 100  # a presentation answers a request pinned at most this many blocks back
DOMAIN_ENROLLMENT_REQUEST = b"cityledger/mobility-enrollment-request/1\x00"


class EnrollmentRefused(ValueError):
    """The office issues no ticket: why, naming the field."""


def compute_vehicle_tag(office_secret: bytes, vehicle_did: str, programme_id: int, period: int) -> bytes:
    """The office's keyed hash of (vehicle, programme, period): one enrollment per vehicle per period."""
    return hmac.new(office_secret, b"cityledger/mobility-vehicle-tag/1\x00" +
                    encode([vehicle_did, programme_id, period]), "sha256").digest()


def issue_enrollment(office_key: PrivateKey, office_secret: bytes, chain_id: str, programme_id: int, period: int,
                     vehicle_did: str, pseudonym_key: PublicKey, account: bytes) -> Enroll:
    """The office's ticket for a vehicle whose registration it checked, as the Enroll message that
    `account` (the owner's pseudonymous account for this period) sends."""
    tag = compute_vehicle_tag(office_secret, vehicle_did, programme_id, period)
    signature = sign_ticket(office_key, chain_id, programme_id, period, pseudonym_key, tag, account)
    return Enroll(programme_id, period, pseudonym_key, tag, signature)


class EnrollmentDesk:
    """The transport office's desk: checks an owner's presentation of a valid, unrevoked vehicle
    registration (issued under `cred_def_id`, the office's own) and issues the enrollment ticket.

    The presentation request is derived from what the ticket will bind (chain, programme, period,
    pseudonym key, account) and a recent height, so a presentation cannot be reused for another
    pseudonym, account or period. Only `device_did` is revealed, and only to the office."""

    def __init__(self, key: PrivateKey, secret: bytes, chain_id: str, cred_def_id: str) -> None:
        self.key, self.secret, self.chain_id, self.cred_def_id = key, secret, chain_id, cred_def_id

    def request(self, programme_id: int, period: int, pseudonym_key: PublicKey, account: bytes,
                height: int) -> dict:
        """The presentation request an owner answers for one ticket."""
        seed = encode([self.chain_id, programme_id, period, [pseudonym_key.scheme, pseudonym_key.key], account,
                       height])
        nonce = str(int.from_bytes(sha256(DOMAIN_ENROLLMENT_REQUEST + seed)[:10], "big"))
        return {"name": "mobility-enrollment", "version": "1.0", "nonce": nonce,
                "requested_attributes": {"registration": {"names": ["device_did"],
                                                          "restrictions": [{"cred_def_id": self.cred_def_id}]}},
                "requested_predicates": {}, "non_revoked": {"to": height}}

    def issue(self, state: StateReader, current_height: int, programme_id: int, period: int,
              pseudonym_key: PublicKey, account: bytes, height: int, presentation: str) -> Enroll:
        """Verify the presentation (against the ledger's state) and sign the ticket; raise EnrollmentRefused."""
        if not current_height - MAX_TICKET_REQUEST_AGE_BLOCKS <= height <= current_height:
            raise EnrollmentRefused(f"height: expected {current_height - MAX_TICKET_REQUEST_AGE_BLOCKS} to "
                                    f"{current_height}, got {height}")
        request = self.request(programme_id, period, pseudonym_key, account, height)
        verdict = verify_presentation(state, request, presentation)
        if not verdict.verified:
            raise EnrollmentRefused(f"presentation: {verdict.reason}")
        vehicle = verdict.revealed.get("registration", {}).get("device_did")
        if not isinstance(vehicle, str) or not vehicle:
            raise EnrollmentRefused("presentation: reveals no device_did")
        return issue_enrollment(self.key, self.secret, self.chain_id, programme_id, period, vehicle, pseudonym_key,
                                account)


@dataclass(frozen=True)
class SignedTrip:
    """What the vehicle hands its owner at trip end: the features, their commitment and its signature."""

    programme_id: int
    trip_id: bytes
    features: list[int]  # the model inputs: the features, then the salt
    commitment: bytes
    signature: bytes


def close_trip(pseudonym: PrivateKey, chain_id: str, programme_id: int, features: list[int],
               trip_id: bytes | None = None) -> SignedTrip:
    """The vehicle commits to a trip's features, salted, before anyone scores it."""
    trip_id = os.urandom(TRIP_ID_BYTES) if trip_id is None else trip_id
    inputs = list(features) + new_salt()
    commitment = compute_commitment(inputs)
    signature = sign_commitment(pseudonym, chain_id, programme_id, trip_id, commitment)
    return SignedTrip(programme_id, trip_id, inputs, commitment, signature)


def build_claim(prover: Prover, trip: SignedTrip) -> ClaimTrip:
    """The owner's device proves the committed features' score and builds the claim."""
    proof = prover.prove(trip.features)
    if proof.commitment != trip.commitment:
        raise ValueError("features: the proof's hashed input is not the vehicle's commitment")
    return ClaimTrip(trip.programme_id, trip.trip_id, trip.commitment, trip.signature, proof.score_fixed,
                     proof.distance_fixed, proof.proof)
