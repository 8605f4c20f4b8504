"""Mobility errors: stable codes in codespace 'mobility'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("mobility")
ERR_INVALID = ERRORS.register(1, "invalid_mobility")
ERR_UNKNOWN_PROGRAMME = ERRORS.register(2, "unknown_programme")
ERR_NOT_SPONSOR = ERRORS.register(3, "not_sponsor")
ERR_EXPIRED = ERRORS.register(4, "programme_expired")
ERR_NOT_EXPIRED = ERRORS.register(5, "programme_running")
ERR_BAD_TICKET = ERRORS.register(6, "bad_enrollment_ticket")
ERR_VEHICLE_ENROLLED = ERRORS.register(7, "vehicle_already_enrolled")
ERR_NOT_ENROLLED = ERRORS.register(8, "not_enrolled")
ERR_ALREADY_CLAIMED = ERRORS.register(9, "already_claimed")
ERR_BAD_COMMITMENT_SIGNATURE = ERRORS.register(10, "bad_commitment_signature")
ERR_PROOF_REJECTED = ERRORS.register(11, "proof_rejected")
ERR_BELOW_THRESHOLD = ERRORS.register(12, "score_below_threshold")
ERR_BUDGET_EXHAUSTED = ERRORS.register(13, "budget_exhausted")
ERR_CAP_REACHED = ERRORS.register(14, "enrollee_cap_reached")
ERR_WRONG_PERIOD = ERRORS.register(15, "wrong_period")
ERR_ACCOUNT_ENROLLED = ERRORS.register(16, "account_already_enrolled")
ERR_WITHDRAWN = ERRORS.register(17, "programme_withdrawn")
