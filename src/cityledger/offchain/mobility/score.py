"""The driving score: a points formula over a trip's features, as integers and as an ONNX graph.

Every trip starts at 100 points and loses points for what its features show, each feature clipped
to its valid range first, so no out-of-range value can raise a score (a negative count clips to 0,
a huge one to its cap). The score is clipped to 0..100. docs/DRIVING_SCORE.md explains it to a
resident; `compute_score_fixed` is the same formula in integers, the reference the proofs match.
"""

from __future__ import annotations

from dataclasses import dataclass

SCORE_SCALE_BITS = 7  # the circuit's fixed point: a value v is the integer v * 2**7
SCORE_ONE = 1 << SCORE_SCALE_BITS
MAX_POINTS = 100
MAX_DISTANCE_KM = 200  # a trip's distance is clipped here (rewards per km stop counting past it)


@dataclass(frozen=True)
class Feature:
    """One input of the score: its name, valid range (clipped into), and points lost per unit."""

    name: str
    cap: int  # values are clipped into 0..cap
    penalty_fixed: int  # points lost per unit, times SCORE_ONE (so 64 = half a point)
    unit: str


# The order is the model's input order, fixed forever for a model version.
FEATURES = (
    Feature("harsh_brakes_per_100km", 30, 128, "events per 100 km"),
    Feature("harsh_accels_per_100km", 30, 64, "events per 100 km"),
    Feature("harsh_corners_per_100km", 30, 64, "events per 100 km"),
    Feature("speeding_pct", 60, 64, "% of trip time above the limit"),
    Feature("night_pct", 100, 16, "% of trip time between 22:00 and 05:00"),
    Feature("distance_km", MAX_DISTANCE_KM, 0, "km"),
)
DISTANCE_INDEX = 5
MODEL_NAME = "driving-score-v1"
# After the features the model takes SALT_INPUTS random integers below 2**SALT_BITS, clipped to 0 and
# weighted 0: they change only the inputs' hash, so two trips with equal features have different
# commitments (66 random bits: no collision among billions of trips). 22 bits at scale 7 stay
# inside the range checks (256**4 / 2).
SALT_INPUTS = 3
SALT_BITS = 22
MODEL_INPUTS = len(FEATURES) + SALT_INPUTS


def clip(value: int, cap: int) -> int:
    """`value` clipped into 0..cap."""
    return min(max(value, 0), cap)


def compute_points_lost(features: list[int]) -> list[int]:
    """Points lost per feature, times SCORE_ONE, after clipping (the explanation of a score)."""
    if len(features) not in (len(FEATURES), MODEL_INPUTS):
        raise ValueError(f"features: expected {len(FEATURES)} integers (or {MODEL_INPUTS} with the salt), got "
                         f"{len(features)}")
    return [clip(value, spec.cap) * spec.penalty_fixed for value, spec in zip(features, FEATURES)]


def compute_score_fixed(features: list[int]) -> tuple[int, int]:
    """(score, distance) times SCORE_ONE: what the circuit outputs for these integer features."""
    score = clip(MAX_POINTS * SCORE_ONE - sum(compute_points_lost(features)), MAX_POINTS * SCORE_ONE)
    return score, clip(features[DISTANCE_INDEX], MAX_DISTANCE_KM) * SCORE_ONE


def explain(features: list[int]) -> dict[str, object]:
    """A trip's score and, per feature, the value used and the points it cost (for a resident)."""
    lost = compute_points_lost(features)
    score, distance = compute_score_fixed(features)
    return {"score": score / SCORE_ONE, "distance_km": distance // SCORE_ONE,
            "features": [{"name": spec.name, "value": value, "used": clip(value, spec.cap), "unit": spec.unit,
                          "points_lost": points / SCORE_ONE}
                         for spec, value, points in zip(FEATURES, features, lost)]}


def build_onnx(penalties: list[int] | None = None) -> bytes:
    """The score as an ONNX graph (deterministic bytes): clip inputs, weighted sum, clip to 0..100.

    `penalties` (points per unit, times SCORE_ONE) replaces the weights: tests build another model
    with it. Clipping is relu(x) then cap - relu(cap - x), which ezkl proves with range checks; the
    salt inputs are clipped to 0 and weighted 0."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    penalties = [spec.penalty_fixed for spec in FEATURES] if penalties is None else penalties
    count = MODEL_INPUTS
    caps = np.array([[spec.cap for spec in FEATURES] + [0] * SALT_INPUTS], np.float32)
    weights = np.zeros((count, 2), np.float32)
    weights[:len(FEATURES), 0] = [-value / SCORE_ONE for value in penalties]
    weights[DISTANCE_INDEX, 1] = 1.0  # the second output is the clipped distance
    constant = (lambda array, name: numpy_helper.from_array(np.asarray(array, np.float32), name))
    initializers = [constant(caps, "caps"), constant(weights, "weights"), constant([[MAX_POINTS, 0]], "base"),
                    constant([[0, 0]], "low"), constant([[MAX_POINTS, MAX_DISTANCE_KM]], "high")]
    nodes = [helper.make_node("Relu", ["features"], ["positive"]),
             helper.make_node("Sub", ["caps", "positive"], ["room"]),
             helper.make_node("Relu", ["room"], ["room_positive"]),
             helper.make_node("Sub", ["caps", "room_positive"], ["clipped"]),
             helper.make_node("MatMul", ["clipped", "weights"], ["weighted"]),
             helper.make_node("Add", ["weighted", "base"], ["raw"]),
             helper.make_node("Sub", ["raw", "low"], ["above"]),
             helper.make_node("Relu", ["above"], ["floor"]),
             helper.make_node("Sub", ["high", "floor"], ["headroom"]),
             helper.make_node("Relu", ["headroom"], ["headroom_positive"]),
             helper.make_node("Sub", ["high", "headroom_positive"], ["outputs"])]
    graph = helper.make_graph(nodes, MODEL_NAME,
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, count])],
                              [helper.make_tensor_value_info("outputs", TensorProto.FLOAT, [1, 2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="cityledger",
                              producer_version="1")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)
