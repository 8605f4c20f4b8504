"""Driving rewards over REST: the score model, programmes, enrollments and paid claims.

    GET /mobility/model                        the points formula (features, ranges, points per unit) and
                                               the circuit's pinned genesis parameters (docs/DRIVING_SCORE.md)
    GET /mobility/programmes?before=&height=   programmes newest first, MAX_QUERY_PROGRAMMES a page; `next`
                                               is the `before` of the following page
    GET /mobility/programmes/{programme_id}?height=
                                               a programme's terms, budget and what remains
    GET /mobility/programmes/{programme_id}/enrollments/{account}?period=&height=
                                               what one pseudonymous account was paid in a period (default:
                                               the period the height falls in), and for how many trips
    GET /mobility/programmes/{programme_id}/claims/{commitment}?height=
                                               a paid claim by its commitment (64 hex digits): score, km,
                                               reward, height; all the chain keeps of a trip
    POST /mobility/claims/check {account, programme_id, trip_id, commitment, commitment_signature,
                                 score_fixed, distance_fixed, proof}
                                               would the chain pay this claim to `account` now, and how much

The GETs read the module's own queries (modules/mobility/queries.py) on the state at `height` (0,
the default: the latest), as payments' routes do; transactions go through POST /txs (the SDK's
cityledger.sdk.mobility builds them). The claim check runs the node's own ClaimTrip handler (shape,
programme, enrollment, not yet paid, threshold, budget and caps, the pseudonym's signature, the
proof) on a throwaway layer over the latest committed state, as for the next block, and keeps none
of its writes: an owner learns why a claim would be refused before spending a nonce on it. A trip's
samples and features never reach the node.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from typing import Any

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...core.errors import TxError
from ...core.state import Overlay
from ...core.types import address_from_str, address_to_str
from ...modules.base import Context
from ...modules.mobility import MODEL_DRIVING_SCORE_V1, ClaimTrip, compute_period, get_programme
from ...modules.mobility.messages import COMMITMENT_LEN, MAX_PROOF_BYTES, TRIP_ID_LEN
from ...modules.mobility.proofs import PINNED_DIGESTS
from ...offchain.mobility.circuit import LOGROWS
from ...offchain.mobility.score import FEATURES, MAX_DISTANCE_KM, MAX_POINTS, SALT_BITS, SALT_INPUTS, SCORE_ONE
from ...wire.mobility import (MOBILITY_BODY_TYPES, MOBILITY_VIEW_TYPES, ClaimCheckBody, ClaimCheckView,
                              ScoreFeatureView, ScoreModelView)
from ...wire.owned import EnrollmentView
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body, invalid_param, not_found
from .common import MAX_INT64, add_schemas
from .payments import MAX_SIGNATURE_HEX

# A claim check is a ClaimTrip in hex: a proof of at most MAX_PROOF_BYTES is most of it.
MAX_CLAIM_CHECK_BODY_BYTES = 2 * MAX_PROOF_BYTES + 4 * 1024
_TAGS = ["mobility"]
_CLAIM_CHECK = msgspec.json.Decoder(ClaimCheckBody)
# A check that passes the cheap checks costs a proof verification (~8 ms of a core) and, unlike
# POST /txs, no sender quota: at most this many run at once, the others are told to come back (429).
MAX_CLAIM_CHECKS_AT_ONCE = 2
_CLAIM_CHECKS = threading.BoundedSemaphore(MAX_CLAIM_CHECKS_AT_ONCE)
# Byte fields of a claim check: (name, most hex digits, exact or at most).
_HEX_FIELDS = (("trip_id", 2 * TRIP_ID_LEN, True), ("commitment", 2 * COMMITMENT_LEN, True),
               ("commitment_signature", MAX_SIGNATURE_HEX, False), ("proof", 2 * MAX_PROOF_BYTES, False))
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_MODEL = ScoreModelView(
    model=MODEL_DRIVING_SCORE_V1, max_points=MAX_POINTS, score_one=SCORE_ONE, max_distance_km=MAX_DISTANCE_KM,
    features=[ScoreFeatureView(name=f.name, cap=f.cap, penalty_fixed=f.penalty_fixed, unit=f.unit) for f in FEATURES],
    salt_inputs=SALT_INPUTS, salt_bits=SALT_BITS, logrows=LOGROWS, digests=dict(PINNED_DIGESTS[MODEL_DRIVING_SCORE_V1]))
# Path values are parsed here, not by FastAPI's int: it would take "1\n", "+1", "1_0" and "1.0" as ids.
_ID = re.compile(r"[0-9]{1,19}")
_COMMITMENT = re.compile(r"[0-9a-fA-F]{64}")
# The queries' argument names (and the handler's sender) -> this API's names, for the field errors name.
_RENAMED = {"id": "programme_id", "programme": "programme_id", "sender": "account"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(view: str, *more: int) -> dict:
    error = {"application/json": {"schema": _ref("ErrorBody")}}
    described = {400: "Invalid input, named in error.field", 404: "Not found (error.field names what)",
                 409: "The chain would refuse this claim (error.code names why, error.field what)",
                 429: "Too many claim checks running at once: retry shortly"}
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": _ref(view)}}}}
    for status in (400, 404, *more):
        out[status] = {"description": described[status], "content": error}
    return out


def _id(text: str, name: str) -> int:
    if not _ID.fullmatch(text) or not 1 <= int(text) <= MAX_INT64:
        raise invalid_param(f"{name}: expected a decimal id 1 to {MAX_INT64}, got {text[:32]!r}")
    return int(text)


def _int(value: int, name: str, low: int, high: int = MAX_INT64, hint: str = "", error=invalid_param) -> int:
    if not low <= value <= high:
        raise error(f"{name}: expected {low} to {high}{hint}, got {value}")
    return value


def _renamed(message: str) -> str:
    head, colon, rest = message.partition(":")
    return _RENAMED.get(head, head) + colon + rest


def include_mobility(app: FastAPI) -> None:
    """Add the mobility routes (they read through the identity routes' state access) and their schemas."""
    app.include_router(mobility_router(app))
    add_schemas(app, MOBILITY_BODY_TYPES + MOBILITY_VIEW_TYPES + (EnrollmentView,))


def mobility_router(app: FastAPI) -> APIRouter:
    """The mobility routes."""
    router = APIRouter(tags=_TAGS)
    read = partial(_read, app)

    def at(height: int) -> int:
        """The committed height asked for (0: the latest), so that a default period and the state agree."""
        _int(height, "height", 0, MAX_INT64, " (0: the latest)")
        return height or app.state.identity.node.store.last_height()

    @router.get("/mobility/model", summary="The driving score's formula and the circuit's pinned parameters",
                responses={200: {"description": "OK", "content": {"application/json": {
                    "schema": _ref("ScoreModelView")}}}})
    def get_model() -> Response:
        return json_response(_MODEL)

    @router.get("/mobility/programmes", summary="Reward programmes, newest first", responses=_doc("ProgrammesView"))
    def programmes(before: int | None = Query(None), height: int = Query(0)) -> Response:
        args = {} if before is None else {"before": str(_int(before, "before", 1, MAX_INT64))}
        answer = read("programmes", args, at(height))
        return json_response({"count": answer["count"], "items": answer["programmes"], "next": answer["before"]})

    @router.get("/mobility/programmes/{programme_id}", summary="A reward programme", responses=_doc("ProgrammeView"))
    def programme(programme_id: str, height: int = Query(0)) -> Response:
        return json_response(read("programme", {"id": str(_id(programme_id, "programme_id"))}, at(height)))

    @router.get("/mobility/programmes/{programme_id}/enrollments/{account}",
                summary="What one pseudonymous account was paid in a programme period",
                responses=_doc("EnrollmentView"))
    def enrollment(programme_id: str, account: str, period: int | None = Query(None),
                   height: int = Query(0)) -> Response:
        number, height = _id(programme_id, "programme_id"), at(height)
        terms = read("programme", {"id": str(number)}, height)
        last = terms["expiry_height"] // terms["period_blocks"]
        if period is None:  # the period the height falls in, as the handlers count it
            period = min(height // terms["period_blocks"], last)
        _int(period, "period", 0, last, f" (programme {number}'s periods of {terms['period_blocks']} blocks "
                                        f"until height {terms['expiry_height']})")
        return json_response(read("enrollment", {"programme": str(number), "period": str(period),
                                                 "account": account}, height))

    @router.get("/mobility/programmes/{programme_id}/claims/{commitment}",
                summary="A paid claim by its commitment: score, km, reward, height", responses=_doc("ClaimView"))
    def claim(programme_id: str, commitment: str, height: int = Query(0)) -> Response:
        number, height = _id(programme_id, "programme_id"), at(height)
        if not _COMMITMENT.fullmatch(commitment):
            raise invalid_param(f"commitment: expected 64 hex digits, got {commitment[:80]!r}")
        read("programme", {"id": str(number)}, height)  # an unknown programme is a 404 naming programme_id
        return json_response(read("claim", {"programme": str(number), "commitment": commitment.lower()}, height))

    @router.post("/mobility/claims/check", summary="Would the chain pay this claim now?",
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": _ref("ClaimCheckBody")}}}},
                 responses=_doc("ClaimCheckView", 409, 429))
    async def check_claim(request: Request) -> Response:
        body: ClaimCheckBody = decode_json(await read_body(request, MAX_CLAIM_CHECK_BODY_BYTES), _CLAIM_CHECK)
        message, account = _claim_of(body)
        if not _CLAIM_CHECKS.acquire(blocking=False):
            raise ApiError(429, "mobility/busy", f"claim checks: {MAX_CLAIM_CHECKS_AT_ONCE} already running; "
                                                 f"retry shortly", field="body")
        try:
            return json_response(await run_in_threadpool(_check, app.state.identity, message, account))
        finally:
            _CLAIM_CHECKS.release()

    return router


def _read(app: FastAPI, name: str, args: dict[str, str], height: int) -> Any:
    """A mobility query's answer on the state at `height`; its errors as 400/404 naming our parameter."""
    reader = app.state.identity  # state at a height, and the node's own module queries
    try:
        query = reader.module_query("mobility", name)
    except LookupError as exc:
        raise not_found(str(exc).strip("'\"")) from None
    state = reader.state(height)
    try:
        return query(state, args)
    except LookupError as exc:
        raise not_found(_renamed(str(exc).strip("'\""))) from None
    except ValueError as exc:
        raise invalid_param(_renamed(str(exc))) from None


def _claim_of(body: ClaimCheckBody) -> tuple[ClaimTrip, bytes]:
    """The ClaimTrip and sending account of a check's body; 400 naming the first bad field."""
    try:
        account = address_from_str(body.account, "account")
    except ValueError as exc:
        raise invalid_body(str(exc)) from None
    _int(body.programme_id, "programme_id", 1, error=invalid_body)
    for name in ("score_fixed", "distance_fixed"):
        _int(getattr(body, name), name, 0, error=invalid_body)
    raw = {}
    for name, digits, exact in _HEX_FIELDS:
        text = getattr(body, name)
        if len(text) > digits or (exact and len(text) != digits) or not _HEX.fullmatch(text):
            size = f"{digits}" if exact else f"an even number of, at most {digits},"
            raise invalid_body(f"{name}: expected {size} hex digits, got {text[:40]!r} ({len(text)} characters)")
        raw[name] = bytes.fromhex(text)
    return ClaimTrip(body.programme_id, raw["trip_id"], raw["commitment"], raw["commitment_signature"],
                     body.score_fixed, body.distance_fixed, raw["proof"]), account


def _check(reader: Any, message: ClaimTrip, account: bytes) -> ClaimCheckView:
    """Run the node's own ClaimTrip handler as for the next block, on a layer over the latest
    committed state that is then dropped: its verdict, and the payment it would make."""
    node = reader.node
    height = node.store.last_height()
    module = next((m for m in node.app.modules if m.name == "mobility"), None)
    if module is None:
        raise not_found("path: this node runs no mobility module")
    state = reader.state(height)
    if get_programme(state, message.programme_id) is None:
        raise not_found(f"programme_id: no programme {message.programme_id}")
    ctx = Context(Overlay(state), node.app.chain_id, height + 1, 0, account)
    try:
        module.handlers[ClaimTrip](ctx, message)
    except TxError as exc:
        raise ApiError(409, f"{exc.codespace}/{exc.code}", _renamed(exc.message)) from None
    paid = dict(next(event for event in ctx.events if event.type == "mobility.claim_paid").attributes)
    programme = get_programme(state, message.programme_id)  # there: the handler paid from it
    return ClaimCheckView(programme_id=message.programme_id, account=address_to_str(account),
                          period=compute_period(programme, height + 1), score=int(paid["score"]),
                          distance_km=int(paid["distance_km"]), reward=int(paid["reward"]), height=height)
