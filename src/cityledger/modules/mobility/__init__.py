"""mobility: responsible-driving reward programmes paid for zero-knowledge-proven trip scores."""

from functools import partial

from ...core.statekeys import PREFIX_MOBILITY
from ..base import Module
from .errors import ERRORS
from .expected import Bank, Identity, Verifier
from .genesis import init_genesis
from .handlers import (
    compute_period,
    compute_reward,
    get_enrollment,
    get_programme,
    process_claim,
    process_create_programme,
    process_enroll,
    process_fund_programme,
    process_withdraw_programme,
)
from .invariants import check_mobility
from .keys import MOBILITY_ACCOUNT
from .messages import (
    MAX_DISTANCE_KM,
    MAX_SCORE,
    MODEL_DRIVING_SCORE_V1,
    SCORE_ONE,
    ClaimRecord,
    ClaimTrip,
    CreateProgramme,
    Enroll,
    EnrollmentRecord,
    FundProgramme,
    ProgrammeRecord,
    WithdrawProgramme,
)
from .owned import query_enrollments_of
from .proofs import ProofVerifier, Verdict, circuit_dir, compute_instances
from .queries import query_claim, query_enrollment, query_programme, query_programmes
from .signing import compute_commitment_bytes, compute_ticket_bytes, sign_commitment, sign_ticket, verify_commitment
from .stateless import check_claim, remember_claim


def new_module(bank: Bank, identity: Identity, verifier: Verifier) -> Module:
    """The mobility module, given bank's keeper (budgets), identity's (ticket issuers) and a verifier."""
    return Module(
        name="mobility",
        prefix=PREFIX_MOBILITY,
        errors=ERRORS,
        handlers={
            CreateProgramme: partial(process_create_programme, bank, identity),
            FundProgramme: partial(process_fund_programme, bank),
            WithdrawProgramme: partial(process_withdraw_programme, bank),
            Enroll: partial(process_enroll, identity),
            ClaimTrip: partial(process_claim, bank, verifier),
        },
        queries={"programme": query_programme, "programmes": query_programmes, "enrollment": query_enrollment,
                 "claim": query_claim, "enrollments_of": query_enrollments_of},
        init_genesis=init_genesis,
        invariants=(partial(check_mobility, bank),),
        stateless_checks={ClaimTrip: check_claim},
        stateless_checked={ClaimTrip: partial(remember_claim, verifier)},
    )


__all__ = [
    "Bank", "ClaimRecord", "ClaimTrip", "CreateProgramme", "ERRORS", "Enroll", "EnrollmentRecord", "FundProgramme",
    "Identity", "MAX_DISTANCE_KM", "MAX_SCORE", "MOBILITY_ACCOUNT", "MODEL_DRIVING_SCORE_V1", "ProgrammeRecord",
    "ProofVerifier", "SCORE_ONE", "Verdict", "Verifier", "WithdrawProgramme", "circuit_dir", "compute_commitment_bytes",
    "compute_instances", "compute_period", "compute_reward", "compute_ticket_bytes", "get_enrollment", "get_programme",
    "new_module", "sign_commitment", "sign_ticket", "verify_commitment",
]
