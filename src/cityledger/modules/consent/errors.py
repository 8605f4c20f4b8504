"""Consent errors: stable codes in codespace 'consent'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("consent")
ERR_INVALID_DATA_SET = ERRORS.register(1, "invalid_data_set")
ERR_UNKNOWN_DATA_SET = ERRORS.register(2, "unknown_data_set")
ERR_ALREADY_REGISTERED = ERRORS.register(3, "already_registered")
ERR_NOT_OWNER = ERRORS.register(4, "not_owner")
ERR_UNKNOWN_DEVICE = ERRORS.register(5, "unknown_device")
ERR_INVALID_CONSENT = ERRORS.register(6, "invalid_consent")
ERR_UNKNOWN_CONSUMER = ERRORS.register(7, "unknown_consumer")
ERR_UNKNOWN_PURPOSE = ERRORS.register(8, "unknown_purpose")
ERR_UNKNOWN_CONSENT = ERRORS.register(9, "unknown_consent")
ERR_ALREADY_REVOKED = ERRORS.register(10, "already_revoked")
ERR_TOO_MANY_CONSENTS = ERRORS.register(11, "too_many_consents")
ERR_NOT_ACCREDITED = ERRORS.register(12, "not_accredited")
ERR_INVALID_ANCHOR = ERRORS.register(13, "invalid_anchor")
ERR_BROKEN_CHAIN = ERRORS.register(14, "broken_chain")
ERR_NOT_CONTROLLER = ERRORS.register(15, "not_controller")
ERR_INVALID_VAULT_KEY = ERRORS.register(16, "invalid_vault_key")
