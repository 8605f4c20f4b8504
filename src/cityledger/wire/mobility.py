"""Answers of the driving-rewards routes (api/routes/mobility.py).

Amounts are integer micro-credits, accounts `city` + 40 hex digits (pseudonymous: an enrollee's
account is fresh per programme period), commitments and trip ids hex. A paid claim is all the chain
keeps of a trip: its score, whole kilometres, reward and block height.
"""

from __future__ import annotations

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class ScoreFeatureView(_View):
    """One input of the score: valid range (clipped into) and points lost per unit, times score_one."""

    name: str
    cap: int
    penalty_fixed: int
    unit: str


class ScoreModelView(_View):
    """GET /mobility/model: the score formula a resident's app explains, and the circuit's pinned
    genesis parameters (SHA-256 of settings.json, vk.key and kzg.srs)."""

    model: str
    max_points: int
    score_one: int  # fixed point: a proven value v is the integer v * score_one
    max_distance_km: int
    features: list[ScoreFeatureView]
    salt_inputs: int
    salt_bits: int
    logrows: int
    digests: dict[str, str]


class ProgrammeView(_View):
    """GET /mobility/programmes/{id}: a reward programme's terms, its budget and what remains of it."""

    programme_id: int
    sponsor: str
    model: str
    budget: int  # escrowed so far, funding included
    remaining: int
    min_score: int  # points a trip needs
    reward_per_trip: int
    reward_per_km: int
    cap_per_trip: int
    cap_per_enrollee: int  # per enrollee per period
    period_blocks: int  # enrollment period: period p is heights p * period_blocks onwards
    expiry_height: int  # the last height it pays
    issuer: str  # DID of the office whose tickets enroll
    claims: int  # trips paid
    withdrawn: bool
    created_height: int
    account: str  # the module account holding every programme's budget


class ProgrammesView(_View):
    """GET /mobility/programmes: programmes newest first, one page."""

    count: int  # programmes ever created
    items: list[ProgrammeView]
    next: int | None  # the `before` of the following (older) page; null on the last


class ClaimView(_View):
    """GET /mobility/programmes/{id}/claims/{commitment}: a paid claim, all the chain keeps of a trip."""

    programme_id: int
    trip_id: str
    commitment: str
    score: int  # whole points, as proven
    distance_km: int  # whole km, as proven
    reward: int
    height: int  # of the block that paid it


class ClaimCheckBody(_Body):
    """POST /mobility/claims/check: would the chain pay this claim (a ClaimTrip, bytes in hex) to `account` now?"""

    account: str  # the enrolled pseudonymous account that would send it
    programme_id: int
    trip_id: str
    commitment: str
    commitment_signature: str
    score_fixed: int  # score x score_one, as proven
    distance_fixed: int  # km x score_one, as proven
    proof: str


class ClaimCheckView(_View):
    """A claim the chain would pay in the block after `height`, and what it would pay."""

    programme_id: int
    account: str
    period: int
    score: int
    distance_km: int
    reward: int
    height: int  # the committed height it was checked against


MOBILITY_BODY_TYPES = (ClaimCheckBody,)
MOBILITY_VIEW_TYPES = (ScoreFeatureView, ScoreModelView, ProgrammeView, ProgrammesView, ClaimView,
                       ClaimCheckView)
