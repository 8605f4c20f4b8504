"""Answers of the driving-rewards routes (api/routes/mobility.py)."""

from __future__ import annotations

import msgspec


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


MOBILITY_VIEW_TYPES = (ScoreFeatureView, ScoreModelView)
