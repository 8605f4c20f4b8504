"""What a vehicle's pseudonym and an enrollment issuer sign: the one definition the chain and the
off-chain vehicle, owner and transport office all use.

A trip commitment is the pseudonym key's signature over

    DOMAIN_COMMITMENT || msgpack([chain_id, programme_id, trip_id, commitment])

made by the vehicle at trip end, before anyone scores the trip. An enrollment ticket is the
issuer's signature over

    DOMAIN_TICKET || msgpack([chain_id, programme_id, period, [scheme, pseudonym key], vehicle_tag, account])

The account is the one that will send the enrollment: a ticket seen in the mempool cannot be
replayed from another account to take the vehicle's place for the period.
"""

from __future__ import annotations

from ...core.encoding import encode
from ...core.keys import PrivateKey, PublicKey, verify_signature

DOMAIN_COMMITMENT = b"cityledger/mobility-trip/1\x00"
DOMAIN_TICKET = b"cityledger/mobility-enrollment/1\x00"


def compute_commitment_bytes(chain_id: str, programme_id: int, trip_id: bytes, commitment: bytes) -> bytes:
    """What a vehicle signs, with its programme pseudonym, to fix a trip's features."""
    return DOMAIN_COMMITMENT + encode([chain_id, programme_id, trip_id, commitment])


def sign_commitment(key: PrivateKey, chain_id: str, programme_id: int, trip_id: bytes, commitment: bytes) -> bytes:
    """The pseudonym's signature over a trip commitment."""
    return key.sign(compute_commitment_bytes(chain_id, programme_id, trip_id, commitment))


def verify_commitment(key: PublicKey, chain_id: str, programme_id: int, trip_id: bytes, commitment: bytes,
                      signature: bytes) -> bool:
    """True if `signature` is `key`'s over exactly this trip commitment."""
    return verify_signature(key, compute_commitment_bytes(chain_id, programme_id, trip_id, commitment), signature)


def compute_ticket_bytes(chain_id: str, programme_id: int, period: int, pseudonym_key: PublicKey,
                         vehicle_tag: bytes, account: bytes) -> bytes:
    """What an enrollment issuer signs to let one account and pseudonym enroll one vehicle for one period."""
    return DOMAIN_TICKET + encode([chain_id, programme_id, period, [pseudonym_key.scheme, pseudonym_key.key],
                                   vehicle_tag, account])


def sign_ticket(key: PrivateKey, chain_id: str, programme_id: int, period: int, pseudonym_key: PublicKey,
                vehicle_tag: bytes, account: bytes) -> bytes:
    """The issuer's enrollment ticket signature."""
    return key.sign(compute_ticket_bytes(chain_id, programme_id, period, pseudonym_key, vehicle_tag, account))
