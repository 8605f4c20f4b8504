"""Defaults of the CSMS that a node's config reads without importing the OCPP stack."""

DEFAULT_PORT = 9000
DEFAULT_MARGIN_MICRO = 1_000_000  # how far (micro-credits) a vehicle's vouchers may trail the running cost
SESSION_TIMEOUT_S = 86_400  # a session with no event for this long is closed with its newest voucher
MIN_SESSION_TIMEOUT_S = 60  # [charging] session_timeout_s bounds
MAX_SESSION_TIMEOUT_S = 30 * 86_400
