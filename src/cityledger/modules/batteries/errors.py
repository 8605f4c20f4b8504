"""Battery passport errors: stable codes in codespace 'batteries'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("batteries")
ERR_INVALID_PASSPORT = ERRORS.register(1, "invalid_passport")
ERR_UNKNOWN_PASSPORT = ERRORS.register(2, "unknown_passport")
ERR_PASSPORT_EXISTS = ERRORS.register(3, "passport_exists")
ERR_WRONG_ROLE = ERRORS.register(4, "wrong_role")
ERR_WRONG_STAGE = ERRORS.register(5, "wrong_stage")
ERR_CLOSED = ERRORS.register(6, "passport_closed")
ERR_BAD_REPORT = ERRORS.register(7, "bad_report")
ERR_UNKNOWN_DEVICE = ERRORS.register(8, "unknown_device")
ERR_INVALID_RECYCLING = ERRORS.register(9, "invalid_recycling")
ERR_BATCH_EXISTS = ERRORS.register(10, "batch_exists")
ERR_DOCUMENT_VERSION = ERRORS.register(11, "document_version")
ERR_LOG_ANCHOR = ERRORS.register(12, "log_anchor")
