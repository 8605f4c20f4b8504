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

Each reads the module's own queries (modules/mobility/queries.py) on the state at `height` (0, the
default: the latest), as payments' routes do; transactions go through POST /txs (the SDK's
cityledger.sdk.mobility builds them). A trip's samples and features never reach the node.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from starlette.responses import Response

from ...modules.mobility import MODEL_DRIVING_SCORE_V1
from ...modules.mobility.proofs import PINNED_DIGESTS
from ...offchain.mobility.circuit import LOGROWS
from ...offchain.mobility.score import FEATURES, MAX_DISTANCE_KM, MAX_POINTS, SALT_BITS, SALT_INPUTS, SCORE_ONE
from ...wire.mobility import MOBILITY_VIEW_TYPES, ScoreFeatureView, ScoreModelView
from ...wire.owned import EnrollmentView
from ..codec import json_response
from ..errors import invalid_param, not_found
from .common import MAX_INT64, add_schemas

_TAGS = ["mobility"]
_MODEL = ScoreModelView(
    model=MODEL_DRIVING_SCORE_V1, max_points=MAX_POINTS, score_one=SCORE_ONE, max_distance_km=MAX_DISTANCE_KM,
    features=[ScoreFeatureView(name=f.name, cap=f.cap, penalty_fixed=f.penalty_fixed, unit=f.unit) for f in FEATURES],
    salt_inputs=SALT_INPUTS, salt_bits=SALT_BITS, logrows=LOGROWS, digests=dict(PINNED_DIGESTS[MODEL_DRIVING_SCORE_V1]))
# Path values are parsed here, not by FastAPI's int: it would take "1\n", "+1", "1_0" and "1.0" as ids.
_ID = re.compile(r"[0-9]{1,19}")
_COMMITMENT = re.compile(r"[0-9a-fA-F]{64}")
# The queries' argument names -> this API's parameter names, for the field their errors name.
_RENAMED = {"id": "programme_id", "programme": "programme_id"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(view: str) -> dict:
    error = {"application/json": {"schema": _ref("ErrorBody")}}
    return {200: {"description": "OK", "content": {"application/json": {"schema": _ref(view)}}},
            400: {"description": "Invalid input, named in error.field", "content": error},
            404: {"description": "Not found (error.field names what)", "content": error}}


def _id(text: str, name: str) -> int:
    if not _ID.fullmatch(text) or not 1 <= int(text) <= MAX_INT64:
        raise invalid_param(f"{name}: expected a decimal id 1 to {MAX_INT64}, got {text[:32]!r}")
    return int(text)


def _int(value: int, name: str, low: int, high: int, hint: str = "") -> int:
    if not low <= value <= high:
        raise invalid_param(f"{name}: expected {low} to {high}{hint}, got {value}")
    return value


def _renamed(message: str) -> str:
    head, colon, rest = message.partition(":")
    return _RENAMED.get(head, head) + colon + rest


def include_mobility(app: FastAPI) -> None:
    """Add the mobility routes (they read through the identity routes' state access) and their schemas."""
    app.include_router(mobility_router(app))
    add_schemas(app, MOBILITY_VIEW_TYPES + (EnrollmentView,))


def mobility_router(app: FastAPI) -> APIRouter:
    """The mobility routes."""
    router = APIRouter(tags=_TAGS)

    def read(name: str, args: dict[str, str], height: int) -> Any:
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

    return router
