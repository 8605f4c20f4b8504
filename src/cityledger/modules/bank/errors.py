"""Bank errors: stable codes in codespace 'bank'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("bank")
ERR_INSUFFICIENT_FUNDS = ERRORS.register(1, "insufficient_funds")
ERR_INVALID_AMOUNT = ERRORS.register(2, "invalid_amount")
ERR_INVALID_ADDRESS = ERRORS.register(3, "invalid_address")
ERR_TOO_MANY_OUTPUTS = ERRORS.register(4, "too_many_outputs")
ERR_OVERFLOW = ERRORS.register(5, "balance_overflow")
