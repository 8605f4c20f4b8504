"""Device registry errors: stable codes in codespace 'devices'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("devices")
ERR_UNKNOWN_DEVICE = ERRORS.register(1, "unknown_device")
ERR_INVALID_DEVICE = ERRORS.register(2, "invalid_device")
ERR_NOT_OWNER = ERRORS.register(3, "not_owner")
ERR_MANUFACTURER = ERRORS.register(4, "manufacturer_not_trusted")
ERR_BAD_SIGNATURE = ERRORS.register(5, "bad_signature")
ERR_ALREADY_REGISTERED = ERRORS.register(6, "already_registered")
ERR_ALREADY_BOUND = ERRORS.register(7, "already_bound")
ERR_BINDING_PROOF = ERRORS.register(8, "binding_proof_rejected")
ERR_NO_TRANSFER = ERRORS.register(9, "no_pending_transfer")
ERR_DECOMMISSIONED = ERRORS.register(10, "decommissioned")
