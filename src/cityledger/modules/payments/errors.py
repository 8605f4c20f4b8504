"""Payments errors: stable codes in codespace 'payments'."""

from ...core.errors import ErrorCatalog

ERRORS = ErrorCatalog("payments")
ERR_INVALID = ERRORS.register(1, "invalid_payment")
ERR_UNKNOWN_DEVICE = ERRORS.register(2, "unknown_device")
ERR_NOT_OWNER = ERRORS.register(3, "not_device_owner")
ERR_NO_POLICY = ERRORS.register(4, "no_policy")
ERR_FROZEN = ERRORS.register(5, "device_frozen")
ERR_POLICY_EXPIRED = ERRORS.register(6, "policy_expired")
ERR_COUNTERPARTY = ERRORS.register(7, "counterparty_not_allowed")
ERR_DAILY_CAP = ERRORS.register(8, "over_daily_cap")
ERR_COUNTERPARTY_CAP = ERRORS.register(9, "over_counterparty_cap")
ERR_UNKNOWN_ESCROW = ERRORS.register(10, "unknown_escrow")
ERR_UNKNOWN_CHANNEL = ERRORS.register(11, "unknown_channel")
ERR_NOT_PARTY = ERRORS.register(12, "not_party")
ERR_TOO_EARLY = ERRORS.register(13, "too_early")
ERR_SETTLED = ERRORS.register(14, "channel_settled")
ERR_CLOSING = ERRORS.register(15, "channel_closing")
ERR_WINDOW_CLOSED = ERRORS.register(16, "window_closed")
ERR_STALE_VOUCHER = ERRORS.register(17, "stale_voucher")
ERR_OVER_DEPOSIT = ERRORS.register(18, "over_deposit")
ERR_BAD_VOUCHER = ERRORS.register(19, "bad_voucher_signature")
