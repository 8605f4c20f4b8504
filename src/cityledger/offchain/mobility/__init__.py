"""The vehicle's and the owner's side of driving rewards: trip features, the score, proofs."""

from .features import Sample, TripFeatures, compute_features
from .score import FEATURES, MODEL_NAME, SCORE_ONE, build_onnx, compute_score_fixed, explain

__all__ = ["FEATURES", "MODEL_NAME", "SCORE_ONE", "Sample", "TripFeatures", "build_onnx", "compute_features",
           "compute_score_fixed", "explain"]
