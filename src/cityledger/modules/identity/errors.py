"""Identity errors: stable codes in codespace 'identity'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("identity")
ERR_INVALID_DID = ERRORS.register(1, "invalid_did")
ERR_DID_EXISTS = ERRORS.register(2, "did_exists")
ERR_UNKNOWN_DID = ERRORS.register(3, "unknown_did")
ERR_DEACTIVATED = ERRORS.register(4, "did_deactivated")
ERR_UNAUTHORIZED = ERRORS.register(5, "unauthorized")
ERR_INVALID_DOCUMENT = ERRORS.register(6, "invalid_document")
ERR_VERSION_MISMATCH = ERRORS.register(7, "version_mismatch")
ERR_NOT_ACCREDITED = ERRORS.register(8, "issuer_not_accredited")
ERR_ALREADY_ANCHORED = ERRORS.register(9, "already_anchored")
ERR_UNKNOWN_OBJECT = ERRORS.register(10, "unknown_anchored_object")
ERR_INVALID_OBJECT = ERRORS.register(11, "invalid_anchored_object")
ERR_STATUS_LIST = ERRORS.register(12, "invalid_status_list")
ERR_ACCREDITATION = ERRORS.register(13, "invalid_accreditation")
ERR_WRONG_KIND = ERRORS.register(14, "wrong_did_kind")
