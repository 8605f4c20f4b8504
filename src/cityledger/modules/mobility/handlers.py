"""Reward programmes, pseudonymous enrollment and proven trip claims.

Every budget credit sits in bank's MOBILITY_ACCOUNT, moved there from the sponsor and out to an
enrollee (or back to the sponsor after expiry) through the Bank keeper; each programme's
`remaining` counts its share, and the invariant checks the sum against the account.
"""

from __future__ import annotations

import msgspec

from ...core.encoding import decoder, encode
from ...core.keys import PUBLIC_KEY_LEN, SIGNATURE_LEN, verify_signature
from ...core.state import StateReader
from ..bank.messages import MAX_AMOUNT
from ..base import Context
from ..identity.did import is_did
from ..identity.messages import PURPOSE_ASSERTION
from .errors import (
    ERR_ACCOUNT_ENROLLED,
    ERR_ALREADY_CLAIMED,
    ERR_BAD_COMMITMENT_SIGNATURE,
    ERR_BAD_TICKET,
    ERR_BELOW_THRESHOLD,
    ERR_BUDGET_EXHAUSTED,
    ERR_CAP_REACHED,
    ERR_EXPIRED,
    ERR_INVALID,
    ERR_NOT_ENROLLED,
    ERR_NOT_EXPIRED,
    ERR_NOT_SPONSOR,
    ERR_PROOF_REJECTED,
    ERR_UNKNOWN_PROGRAMME,
    ERR_VEHICLE_ENROLLED,
    ERR_WITHDRAWN,
    ERR_WRONG_PERIOD,
)
from .expected import Bank, Identity, Verifier
from .keys import (
    MOBILITY_ACCOUNT,
    NEXT_PROGRAMME_ID_KEY,
    commitment_key,
    enrollment_key,
    programme_key,
    trip_key,
    vehicle_key,
)
from .messages import (
    COMMITMENT_LEN,
    ENROLLMENT_CREDENTIAL_TYPE,
    MAX_DISTANCE_KM,
    MAX_PERIOD_BLOCKS,
    MAX_PROGRAMME_BLOCKS,
    MAX_PROOF_BYTES,
    MAX_SCORE,
    MIN_PERIOD_BLOCKS,
    MODEL_DRIVING_SCORE_V1,
    SCORE_ONE,
    TRIP_ID_LEN,
    VEHICLE_TAG_LEN,
    ClaimRecord,
    ClaimTrip,
    CreateProgramme,
    Enroll,
    EnrollmentRecord,
    FundProgramme,
    ProgrammeRecord,
    WithdrawProgramme,
)
from .proofs import compute_instances, is_field_element
from .signing import compute_ticket_bytes, verify_commitment

MODELS = (MODEL_DRIVING_SCORE_V1,)
MAX_ID = 2**63 - 1
_PROGRAMME = decoder(ProgrammeRecord)
_ENROLLMENT = decoder(EnrollmentRecord)


# -- reads ---------------------------------------------------------------------------------------

def decode_programme(raw: bytes) -> ProgrammeRecord:
    """A programme from its stored bytes."""
    return _PROGRAMME.decode_lenient(raw)


def get_programme(state: StateReader, programme_id: int) -> ProgrammeRecord | None:
    """A programme by id, or None."""
    if not isinstance(programme_id, int) or not 0 < programme_id <= MAX_ID:
        return None
    raw = state.get(programme_key(programme_id))
    return None if raw is None else decode_programme(raw)


def get_enrollment(state: StateReader, programme_id: int, period: int, account: bytes) -> EnrollmentRecord | None:
    """An account's enrollment in one programme period, or None."""
    if not (0 < programme_id <= MAX_ID and 0 <= period <= MAX_ID):
        return None
    raw = state.get(enrollment_key(programme_id, period, account))
    return None if raw is None else _ENROLLMENT.decode_lenient(raw)


def compute_period(programme: ProgrammeRecord, height: int) -> int:
    """The enrollment period a height falls in."""
    return height // programme.period_blocks


def compute_reward(programme: ProgrammeRecord, distance_km: int) -> int:
    """A qualifying trip's reward before caps: per trip plus per km, at most the per-trip cap."""
    return min(programme.reward_per_trip + programme.reward_per_km * distance_km, programme.cap_per_trip)


def _programme_for(ctx: Context, programme_id: int, running: bool) -> ProgrammeRecord:
    programme = get_programme(ctx.state, programme_id)
    if programme is None:
        raise ERR_UNKNOWN_PROGRAMME(f"programme_id: no programme {programme_id}", "programme_id")
    if programme.withdrawn:
        raise ERR_WITHDRAWN(f"programme_id: programme {programme_id} was withdrawn", "programme_id")
    if running and ctx.height > programme.expiry_height:
        raise ERR_EXPIRED(f"programme_id: programme {programme_id} expired at height {programme.expiry_height}",
                          "programme_id")
    return programme


def _amount(value: int, field: str, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or not low <= value <= MAX_AMOUNT:
        raise ERR_INVALID(f"{field}: expected {low} to {MAX_AMOUNT} micro-credits, got {value}", field)


def _save(ctx: Context, programme: ProgrammeRecord) -> None:
    ctx.state.set(programme_key(programme.programme_id), encode(programme))


# -- programmes ----------------------------------------------------------------------------------

def _check_programme(identity: Identity, ctx: Context, msg: CreateProgramme) -> None:
    if msg.model not in MODELS:
        raise ERR_INVALID(f"model: expected one of {list(MODELS)}, got {msg.model[:64]!r}", "model")
    _amount(msg.budget, "budget")
    for field in ("reward_per_trip", "reward_per_km"):
        _amount(getattr(msg, field), field, allow_zero=True)
    if msg.reward_per_trip == 0 and msg.reward_per_km == 0:
        raise ERR_INVALID("reward_per_trip: expected a reward per trip or per km above 0", "reward_per_trip")
    _amount(msg.cap_per_trip, "cap_per_trip")
    _amount(msg.cap_per_enrollee, "cap_per_enrollee")
    if not 0 <= msg.min_score <= MAX_SCORE:
        raise ERR_INVALID(f"min_score: expected 0 to {MAX_SCORE} points, got {msg.min_score}", "min_score")
    if not MIN_PERIOD_BLOCKS <= msg.period_blocks <= MAX_PERIOD_BLOCKS:
        raise ERR_INVALID(f"period_blocks: expected {MIN_PERIOD_BLOCKS} to {MAX_PERIOD_BLOCKS}, got "
                          f"{msg.period_blocks}", "period_blocks")
    if not ctx.height <= msg.expiry_height <= ctx.height + MAX_PROGRAMME_BLOCKS:
        raise ERR_INVALID(f"expiry_height: expected {ctx.height} to {ctx.height + MAX_PROGRAMME_BLOCKS}, got "
                          f"{msg.expiry_height}", "expiry_height")
    if not is_did(msg.issuer) or not identity.is_accredited(ctx.state, msg.issuer, ENROLLMENT_CREDENTIAL_TYPE):
        raise ERR_INVALID(f"issuer: expected a DID accredited to issue {ENROLLMENT_CREDENTIAL_TYPE}, got "
                          f"{msg.issuer[:80]!r}", "issuer")


def process_create_programme(bank: Bank, identity: Identity, ctx: Context, msg: CreateProgramme) -> None:
    """Create a programme and escrow its budget from the sponsor."""
    # Check: a known model, amounts in range, rewards not both 0, a period, an expiry ahead, an
    # accredited issuer; then the budget moves (bank refuses an overdraft).
    _check_programme(identity, ctx, msg)
    raw = ctx.state.get(NEXT_PROGRAMME_ID_KEY)
    programme_id = (0 if raw is None else int.from_bytes(raw, "big")) + 1
    bank.send(ctx.state, ctx.sender, MOBILITY_ACCOUNT, msg.budget)
    ctx.state.set(NEXT_PROGRAMME_ID_KEY, programme_id.to_bytes(8, "big"))
    _save(ctx, ProgrammeRecord(
        programme_id, ctx.sender, msg.model, msg.budget, msg.budget, msg.min_score, msg.reward_per_trip,
        msg.reward_per_km, msg.cap_per_trip, msg.cap_per_enrollee, msg.period_blocks, msg.expiry_height, msg.issuer,
        0, False, ctx.height))
    ctx.emit("mobility.programme_created", programme_id=programme_id, budget=msg.budget, model=msg.model)


def process_fund_programme(bank: Bank, ctx: Context, msg: FundProgramme) -> None:
    """The sponsor adds to a running programme's budget."""
    programme = _programme_for(ctx, msg.programme_id, running=True)
    if programme.sponsor != ctx.sender:
        raise ERR_NOT_SPONSOR("sender: only the programme's sponsor funds it", "sender")
    _amount(msg.amount, "amount")
    if programme.budget + msg.amount > MAX_AMOUNT:
        raise ERR_INVALID(f"amount: the budget would exceed {MAX_AMOUNT}", "amount")
    bank.send(ctx.state, ctx.sender, MOBILITY_ACCOUNT, msg.amount)
    _save(ctx, _replace(programme, budget=programme.budget + msg.amount, remaining=programme.remaining + msg.amount))
    ctx.emit("mobility.programme_funded", programme_id=programme.programme_id, amount=msg.amount)


def process_withdraw_programme(bank: Bank, ctx: Context, msg: WithdrawProgramme) -> None:
    """After expiry the sponsor takes back what was not paid out; the programme pays nothing more."""
    programme = _programme_for(ctx, msg.programme_id, running=False)
    if programme.sponsor != ctx.sender:
        raise ERR_NOT_SPONSOR("sender: only the programme's sponsor withdraws it", "sender")
    if ctx.height <= programme.expiry_height:
        raise ERR_NOT_EXPIRED(f"programme_id: runs until height {programme.expiry_height}", "programme_id")
    if programme.remaining:
        bank.send(ctx.state, MOBILITY_ACCOUNT, ctx.sender, programme.remaining)
    _save(ctx, _replace(programme, remaining=0, withdrawn=True))
    ctx.emit("mobility.programme_withdrawn", programme_id=programme.programme_id, amount=programme.remaining)


def _replace(record, **changes):
    return msgspec.structs.replace(record, **changes)


# -- enrollment ----------------------------------------------------------------------------------

def _check_ticket(identity: Identity, ctx: Context, programme: ProgrammeRecord, msg: Enroll) -> None:
    """The ticket is signed by an assertion key of the programme's issuer, still accredited."""
    record = identity.get_did(ctx.state, programme.issuer)
    if record is None or not identity.is_accredited(ctx.state, programme.issuer, ENROLLMENT_CREDENTIAL_TYPE):
        raise ERR_BAD_TICKET(f"issuer_signature: issuer {programme.issuer} is no longer accredited",
                             "issuer_signature")
    signed = compute_ticket_bytes(ctx.chain_id, msg.programme_id, msg.period, msg.pseudonym_key, msg.vehicle_tag,
                                  ctx.sender)
    if not any(verify_signature(key, signed, msg.issuer_signature)
               for key in identity.keys_for(record, PURPOSE_ASSERTION)):
        raise ERR_BAD_TICKET(f"issuer_signature: not a ticket of {programme.issuer} for this programme, period, "
                             "pseudonym, vehicle and sending account", "issuer_signature")


def process_enroll(identity: Identity, ctx: Context, msg: Enroll) -> None:
    """Enroll the sender's account for the current period under a pseudonym key."""
    # Check: a running programme, the current period, key and tag shapes, the issuer's ticket, then
    # one enrollment per account and per vehicle tag in the period.
    programme = _programme_for(ctx, msg.programme_id, running=True)
    period = compute_period(programme, ctx.height)
    if msg.period != period:
        raise ERR_WRONG_PERIOD(f"period: expected the current period {period}, got {msg.period}", "period")
    if msg.pseudonym_key.scheme not in PUBLIC_KEY_LEN or \
            len(msg.pseudonym_key.key) != PUBLIC_KEY_LEN[msg.pseudonym_key.scheme]:
        raise ERR_INVALID("pseudonym_key: expected an Ed25519 or P-256 public key", "pseudonym_key")
    if len(msg.vehicle_tag) != VEHICLE_TAG_LEN:
        raise ERR_INVALID(f"vehicle_tag: expected {VEHICLE_TAG_LEN} bytes, got {len(msg.vehicle_tag)}", "vehicle_tag")
    if len(msg.issuer_signature) != SIGNATURE_LEN:
        raise ERR_BAD_TICKET(f"issuer_signature: expected {SIGNATURE_LEN} bytes, got {len(msg.issuer_signature)}",
                             "issuer_signature")
    _check_ticket(identity, ctx, programme, msg)
    if ctx.state.get(vehicle_key(msg.programme_id, period, msg.vehicle_tag)) is not None:
        raise ERR_VEHICLE_ENROLLED(f"vehicle_tag: this vehicle is already enrolled in programme "
                                   f"{msg.programme_id} for period {period}", "vehicle_tag")
    if get_enrollment(ctx.state, msg.programme_id, period, ctx.sender) is not None:
        raise ERR_ACCOUNT_ENROLLED(f"sender: already enrolled in programme {msg.programme_id} for period {period}",
                                   "sender")
    ctx.state.set(vehicle_key(msg.programme_id, period, msg.vehicle_tag), b"\x01")
    record = EnrollmentRecord(msg.programme_id, period, ctx.sender, msg.pseudonym_key, 0, 0)
    ctx.state.set(enrollment_key(msg.programme_id, period, ctx.sender), encode(record))
    ctx.emit("mobility.enrolled", programme_id=msg.programme_id, period=period)


# -- claims --------------------------------------------------------------------------------------

def _check_claim_shape(msg: ClaimTrip) -> None:
    if len(msg.trip_id) != TRIP_ID_LEN:
        raise ERR_INVALID(f"trip_id: expected {TRIP_ID_LEN} bytes, got {len(msg.trip_id)}", "trip_id")
    if len(msg.commitment) != COMMITMENT_LEN or not is_field_element(msg.commitment):
        raise ERR_INVALID(f"commitment: expected a {COMMITMENT_LEN}-byte little-endian BN254 scalar",
                          "commitment")
    if not isinstance(msg.score_fixed, int) or not 0 <= msg.score_fixed <= MAX_SCORE * SCORE_ONE:
        raise ERR_INVALID(f"score_fixed: expected 0 to {MAX_SCORE * SCORE_ONE}, got {msg.score_fixed}",
                          "score_fixed")
    if not isinstance(msg.distance_fixed, int) or not 0 <= msg.distance_fixed <= MAX_DISTANCE_KM * SCORE_ONE:
        raise ERR_INVALID(f"distance_fixed: expected 0 to {MAX_DISTANCE_KM * SCORE_ONE}, got {msg.distance_fixed}",
                          "distance_fixed")
    if not 0 < len(msg.proof) <= MAX_PROOF_BYTES:
        raise ERR_INVALID(f"proof: expected 1 to {MAX_PROOF_BYTES} bytes, got {len(msg.proof)}", "proof")


def _check_not_claimed(ctx: Context, msg: ClaimTrip) -> None:
    """Claims are deduplicated by commitment and by trip id, never by proof bytes (re-proving the
    same features gives new bytes with the same instances)."""
    if ctx.state.get(commitment_key(msg.programme_id, msg.commitment)) is not None:
        raise ERR_ALREADY_CLAIMED(f"commitment: already paid in programme {msg.programme_id}", "commitment")
    if ctx.state.get(trip_key(msg.programme_id, ctx.sender, msg.trip_id)) is not None:
        raise ERR_ALREADY_CLAIMED(f"trip_id: trip {msg.trip_id.hex()} already paid in programme {msg.programme_id}",
                                  "trip_id")


def _check_proof(verifier: Verifier, ctx: Context, programme: ProgrammeRecord, enrollment: EnrollmentRecord,
                 msg: ClaimTrip) -> None:
    """The pseudonym signed the commitment; the proof holds for the instances the chain builds."""
    if not verify_commitment(enrollment.pseudonym_key, ctx.chain_id, msg.programme_id, msg.trip_id, msg.commitment,
                             msg.commitment_signature):
        raise ERR_BAD_COMMITMENT_SIGNATURE("commitment_signature: not the enrolled pseudonym's signature over "
                                           "this programme, trip and commitment", "commitment_signature")
    instances = compute_instances(msg.commitment, msg.score_fixed, msg.distance_fixed)
    verdict = verifier.verify(programme.model, instances, msg.proof)
    if not verdict.verified:
        raise ERR_PROOF_REJECTED(f"proof: does not prove score {msg.score_fixed}/{SCORE_ONE} over "
                                 f"{msg.distance_fixed}/{SCORE_ONE} km for this commitment under "
                                 f"{programme.model} ({verdict.reason[:120]})", "proof")


def _payout(programme: ProgrammeRecord, enrollment: EnrollmentRecord, distance_km: int) -> int:
    """What the trip earns within the per-enrollee cap and the remaining budget; refuse 0."""
    if programme.remaining == 0:
        raise ERR_BUDGET_EXHAUSTED(f"programme_id: programme {programme.programme_id}'s budget is spent",
                                   "programme_id")
    room = programme.cap_per_enrollee - enrollment.paid
    if room <= 0:
        raise ERR_CAP_REACHED(f"sender: reached the cap of {programme.cap_per_enrollee} for this period", "sender")
    reward = min(compute_reward(programme, distance_km), room, programme.remaining)
    if reward == 0:
        raise ERR_INVALID("distance_fixed: the trip earns nothing (no reward per trip and 0 km)", "distance_fixed")
    return reward


def process_claim(bank: Bank, verifier: Verifier, ctx: Context, msg: ClaimTrip) -> None:
    """Pay a proven trip's reward to the enrollee's pseudonymous account."""
    # Check, cheapest first: shapes, a running programme, the sender's enrollment this period, not
    # yet claimed, the threshold on the stated score; then the signature and the proof (which must
    # prove exactly that score and distance), then the budget and caps.
    _check_claim_shape(msg)
    programme = _programme_for(ctx, msg.programme_id, running=True)
    period = compute_period(programme, ctx.height)
    enrollment = get_enrollment(ctx.state, msg.programme_id, period, ctx.sender)
    if enrollment is None:
        raise ERR_NOT_ENROLLED(f"sender: not enrolled in programme {msg.programme_id} for period {period}", "sender")
    _check_not_claimed(ctx, msg)
    score, distance_km = msg.score_fixed // SCORE_ONE, msg.distance_fixed // SCORE_ONE
    if score < programme.min_score:
        raise ERR_BELOW_THRESHOLD(f"score_fixed: {score} points is below the programme's {programme.min_score}",
                                  "score_fixed")
    reward = _payout(programme, enrollment, distance_km)
    _check_proof(verifier, ctx, programme, enrollment, msg)
    bank.send(ctx.state, MOBILITY_ACCOUNT, ctx.sender, reward)
    _save(ctx, _replace(programme, remaining=programme.remaining - reward, claims=programme.claims + 1))
    ctx.state.set(enrollment_key(msg.programme_id, period, ctx.sender),
                  encode(_replace(enrollment, paid=enrollment.paid + reward, trips=enrollment.trips + 1)))
    ctx.state.set(commitment_key(msg.programme_id, msg.commitment),
                  encode(ClaimRecord(msg.programme_id, msg.trip_id, msg.commitment, score, distance_km, reward,
                                     ctx.height)))
    ctx.state.set(trip_key(msg.programme_id, ctx.sender, msg.trip_id), b"\x01")
    ctx.emit("mobility.claim_paid", programme_id=msg.programme_id, score=score, distance_km=distance_km,
             reward=reward)
