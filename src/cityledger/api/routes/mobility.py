"""Driving rewards over REST: the score model, for residents' apps and sponsors.

    GET /mobility/model     the points formula (features, ranges, points per unit) and the circuit's
                            pinned genesis parameters (docs/DRIVING_SCORE.md)

Programmes, enrollments and paid claims are module queries (GET /query/mobility/programme?id=,
/query/mobility/enrollment?programme=&period=&account=, /query/mobility/claim?programme=&commitment=);
transactions go through POST /txs. A trip's samples and features never reach the node.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from ...modules.mobility import MODEL_DRIVING_SCORE_V1
from ...modules.mobility.proofs import PINNED_DIGESTS
from ...offchain.mobility.circuit import LOGROWS
from ...offchain.mobility.score import FEATURES, MAX_DISTANCE_KM, MAX_POINTS, SALT_BITS, SALT_INPUTS, SCORE_ONE
from ...wire.mobility import MOBILITY_VIEW_TYPES, ScoreFeatureView, ScoreModelView
from ..codec import json_response
from .common import add_schemas

_MODEL = ScoreModelView(
    model=MODEL_DRIVING_SCORE_V1, max_points=MAX_POINTS, score_one=SCORE_ONE, max_distance_km=MAX_DISTANCE_KM,
    features=[ScoreFeatureView(name=f.name, cap=f.cap, penalty_fixed=f.penalty_fixed, unit=f.unit) for f in FEATURES],
    salt_inputs=SALT_INPUTS, salt_bits=SALT_BITS, logrows=LOGROWS, digests=dict(PINNED_DIGESTS[MODEL_DRIVING_SCORE_V1]))


def include_mobility(app: FastAPI) -> None:
    """Add the mobility routes to an app, and their answers' schemas to its OpenAPI document."""
    router = APIRouter(tags=["mobility"])

    @router.get("/mobility/model", summary="The driving score's formula and the circuit's pinned parameters",
                responses={200: {"description": "OK", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ScoreModelView"}}}}})
    def get_model():
        return json_response(_MODEL)

    app.include_router(router)
    add_schemas(app, MOBILITY_VIEW_TYPES)
