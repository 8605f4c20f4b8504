"""Governance errors: stable codes in codespace 'governance'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("governance")
ERR_NOT_MEMBER = ERRORS.register(1, "not_a_member")
ERR_UNKNOWN_ACTION = ERRORS.register(2, "unknown_action")
ERR_UNKNOWN_PROPOSAL = ERRORS.register(3, "unknown_proposal")
ERR_PROPOSAL_CLOSED = ERRORS.register(4, "proposal_closed")
ERR_INVALID_PARAM = ERRORS.register(5, "invalid_parameter")
ERR_INVALID_VALIDATOR = ERRORS.register(6, "invalid_validator")
ERR_INVALID_MEMBERSHIP = ERRORS.register(7, "invalid_membership")
