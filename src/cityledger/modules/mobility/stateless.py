"""A claim's proof checked without state, in the solo engine's verifier processes.

The proof's public instances come from the claim alone ([commitment, score, distance]), so whether
it verifies is a fact about the claim's bytes: a verifier process checks it beside the tx's
signatures, on another core, and this node's handler then finds the verdict in its ProofVerifier's
cache (keyed by model, instances and proof bytes) instead of verifying again in the API's thread.
Which model a programme names is state: the workers verify under WORKER_MODEL, the one model pinned
today; a claim on a programme of another model misses the cache and its handler verifies it.
A validator that did not see the verdict (another node, a replay) verifies the proof itself.
"""

from __future__ import annotations

from functools import lru_cache

from .errors import ERR_PROOF_REJECTED
from .expected import Verifier
from .handlers import _check_claim_shape
from .messages import MODEL_DRIVING_SCORE_V1, ClaimTrip
from .proofs import ProofVerifier, compute_instances

WORKER_MODEL = MODEL_DRIVING_SCORE_V1


@lru_cache(maxsize=1)
def _worker_verifier() -> ProofVerifier:
    """The verifier of a worker process, on the pinned genesis parameters."""
    return ProofVerifier(WORKER_MODEL)


def check_claim(msg: ClaimTrip) -> None:
    """The claim's shape, then its proof under WORKER_MODEL; TxError if either fails."""
    _check_claim_shape(msg)
    instances = compute_instances(msg.commitment, msg.score_fixed, msg.distance_fixed)
    verdict = _worker_verifier().verify(WORKER_MODEL, instances, msg.proof)
    if not verdict.verified:
        raise ERR_PROOF_REJECTED(f"proof: does not verify under {WORKER_MODEL} ({verdict.reason[:120]})", "proof")


def remember_claim(verifier: Verifier, msg: ClaimTrip) -> None:
    """Record in this node's verifier that the claim's proof verified in this node's own worker."""
    instances = compute_instances(msg.commitment, msg.score_fixed, msg.distance_fixed)
    verifier.remember_verified(WORKER_MODEL, instances, msg.proof)
