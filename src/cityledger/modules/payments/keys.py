"""Every state key of the payments module, built in one place."""

from ...core.hashing import sha256
from ...core.statekeys import PREFIX_PAYMENTS, collection_prefix, make_key
from ...core.types import ADDRESS_LEN, Address

_POLICY = 0x01
_SPEND_DAY = 0x02
_SPEND_COUNTERPARTY = 0x03
_COUNTERPARTY = 0x04
_ESCROW = 0x05
_CHANNEL = 0x06
_COUNTER = 0x07  # next ids and the locked total

POLICIES_PREFIX = collection_prefix(PREFIX_PAYMENTS, _POLICY)
ESCROWS_PREFIX = collection_prefix(PREFIX_PAYMENTS, _ESCROW)
CHANNELS_PREFIX = collection_prefix(PREFIX_PAYMENTS, _CHANNEL)
NEXT_ESCROW_ID_KEY = make_key(PREFIX_PAYMENTS, _COUNTER, b"escrow")
NEXT_CHANNEL_ID_KEY = make_key(PREFIX_PAYMENTS, _COUNTER, b"channel")
LOCKED_KEY = make_key(PREFIX_PAYMENTS, _COUNTER, b"locked")

# The bank account that holds every locked credit: no key signs for it, only this module moves it.
PAYMENTS_ACCOUNT = Address(sha256(b"cityledger/module-account/1\x00payments")[:ADDRESS_LEN])


def policy_key(device: str) -> bytes:
    """Key of a device's spending policy, by the device's DID."""
    return make_key(PREFIX_PAYMENTS, _POLICY, device.encode())


def spend_day_key(device: str) -> bytes:
    """Key of what a device spent on its latest day."""
    return make_key(PREFIX_PAYMENTS, _SPEND_DAY, device.encode())


def spend_counterparty_key(device: str, counterparty: bytes) -> bytes:
    """Key of what a device spent with one counterparty on its latest day with it."""
    return make_key(PREFIX_PAYMENTS, _SPEND_COUNTERPARTY, device.encode(), counterparty)


def counterparty_key(address: bytes) -> bytes:
    """Key of a declared counterparty."""
    return make_key(PREFIX_PAYMENTS, _COUNTERPARTY, address)


def escrow_key(escrow_id: int) -> bytes:
    """Key of an escrow, by its id."""
    return make_key(PREFIX_PAYMENTS, _ESCROW, escrow_id.to_bytes(8, "big"))


def channel_key(channel_id: int) -> bytes:
    """Key of a channel, by its id."""
    return make_key(PREFIX_PAYMENTS, _CHANNEL, channel_id.to_bytes(8, "big"))
