"""Mobility messages (versioned), stored records and limits: reward programmes for responsible
driving, pseudonymous enrollment and zero-knowledge-proven trip claims."""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.keys import PublicKey
from ...core.types import Address, Amount, Height

MODEL_DRIVING_SCORE_V1 = "driving-score-v1"  # the one score model a programme may name today
MAX_SCORE = 100  # points
SCORE_ONE = 128  # the circuit's fixed point: a proven value v is the integer v * 2**7
MAX_DISTANCE_KM = 200  # the model clips a trip's distance here
MIN_PERIOD_BLOCKS = 10  # a programme's enrollment period: at least this many blocks
MAX_PERIOD_BLOCKS = 10_000_000
MAX_PROGRAMME_BLOCKS = 50_000_000  # a programme's expiry lies at most this far ahead
MAX_PROOF_BYTES = 16_384  # a driving-score proof is 3,840 bytes
TRIP_ID_LEN = 32
COMMITMENT_LEN = 32  # a Poseidon hash: a BN254 scalar-field element, 32 bytes little-endian
VEHICLE_TAG_LEN = 32
ENROLLMENT_CREDENTIAL_TYPE = "vehicle-registration"  # who may sign enrollment tickets: its issuers


class CreateProgramme(Message, tag="mobility/1.0/create_programme"):
    """A sponsor escrows `budget` for rewards to trips scoring at least `min_score`."""

    model: str  # MODEL_DRIVING_SCORE_V1
    budget: Amount  # moved from the sponsor's account into the mobility account
    min_score: int  # 0..MAX_SCORE: a trip scoring less earns nothing
    reward_per_trip: Amount  # paid per qualifying trip (may be 0)
    reward_per_km: Amount  # paid per proven km (may be 0; not both 0)
    cap_per_trip: Amount  # at most this per trip
    cap_per_enrollee: Amount  # at most this per enrollee per period
    period_blocks: int  # enrollment periods: period = height // period_blocks
    expiry_height: Height  # the last height a claim is paid at; then the sponsor may withdraw
    issuer: str  # the DID (accredited for ENROLLMENT_CREDENTIAL_TYPE) that signs enrollment tickets


class FundProgramme(Message, tag="mobility/1.0/fund_programme"):
    """The sponsor adds to a programme's budget."""

    programme_id: int
    amount: Amount


class WithdrawProgramme(Message, tag="mobility/1.0/withdraw_programme"):
    """After expiry, the sponsor takes back what the programme did not pay out."""

    programme_id: int


class Enroll(Message, tag="mobility/1.0/enroll"):
    """The sender's (pseudonymous) account enrolls for the current period with a ticket from the
    programme's issuer: its signature over (chain, programme, period, pseudonym key, vehicle tag,
    the sender's address)."""

    programme_id: int
    period: int
    pseudonym_key: PublicKey  # signs trip commitments for this programme and period
    vehicle_tag: bytes  # the issuer's keyed hash of (vehicle, programme, period): one enrollment per vehicle
    issuer_signature: bytes


class ClaimTrip(Message, tag="mobility/1.0/claim"):
    """An enrollee claims a trip's reward: the vehicle's signed commitment to the trip's features
    and a proof that the model scores those features `score_fixed` over `distance_fixed`."""

    programme_id: int
    trip_id: bytes  # TRIP_ID_LEN random bytes chosen by the vehicle
    commitment: bytes  # the Poseidon hash of the quantised features (the proof's hashed input)
    commitment_signature: bytes  # by the enrollment's pseudonym key, over commitment bytes
    score_fixed: int  # the proven score times SCORE_ONE (a public output of the proof)
    distance_fixed: int  # the proven distance in km times SCORE_ONE (a public output)
    proof: bytes


class ProgrammeRecord(Record):
    """A reward programme and what is left of its budget."""

    programme_id: int
    sponsor: Address
    model: str
    budget: Amount  # everything ever escrowed
    remaining: Amount  # escrowed and not yet paid or withdrawn
    min_score: int
    reward_per_trip: Amount
    reward_per_km: Amount
    cap_per_trip: Amount
    cap_per_enrollee: Amount
    period_blocks: int
    expiry_height: Height
    issuer: str
    claims: int
    withdrawn: bool
    created_height: Height


class EnrollmentRecord(Record):
    """One pseudonymous account's enrollment in one programme period."""

    programme_id: int
    period: int
    account: Address
    pseudonym_key: PublicKey
    paid: Amount  # rewards paid in this period
    trips: int


class ClaimRecord(Record):
    """A paid claim, kept so neither its commitment nor its trip id is paid again."""

    programme_id: int
    trip_id: bytes
    commitment: bytes
    score: int  # whole points
    distance_km: int
    reward: Amount
    height: Height
