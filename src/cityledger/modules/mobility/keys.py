"""Every state key of the mobility module, built in one place."""

from ...core.hashing import sha256
from ...core.statekeys import PREFIX_MOBILITY, collection_prefix, make_key
from ...core.types import ADDRESS_LEN, Address

_PROGRAMME = 0x01
_ENROLLMENT = 0x02  # by programme, period and account
_VEHICLE = 0x03  # by programme, period and vehicle tag: one enrollment per vehicle
_COMMITMENT = 0x04  # by programme and commitment: a paid claim
_TRIP = 0x05  # by programme, account and trip id: a paid trip
_COUNTER = 0x06  # next programme id

PROGRAMMES_PREFIX = collection_prefix(PREFIX_MOBILITY, _PROGRAMME)
ENROLLMENTS_PREFIX = collection_prefix(PREFIX_MOBILITY, _ENROLLMENT)
NEXT_PROGRAMME_ID_KEY = make_key(PREFIX_MOBILITY, _COUNTER, b"programme")

# The bank account that holds every programme's budget: no key signs for it, only this module moves it.
MOBILITY_ACCOUNT = Address(sha256(b"cityledger/module-account/1\x00mobility")[:ADDRESS_LEN])


def _id(value: int) -> bytes:
    return value.to_bytes(8, "big")


def programme_key(programme_id: int) -> bytes:
    """Key of a programme, by id."""
    return make_key(PREFIX_MOBILITY, _PROGRAMME, _id(programme_id))


def enrollment_key(programme_id: int, period: int, account: bytes) -> bytes:
    """Key of an account's enrollment in one programme period."""
    return make_key(PREFIX_MOBILITY, _ENROLLMENT, _id(programme_id), _id(period), account)


def vehicle_key(programme_id: int, period: int, vehicle_tag: bytes) -> bytes:
    """Key marking a vehicle tag as enrolled in one programme period."""
    return make_key(PREFIX_MOBILITY, _VEHICLE, _id(programme_id), _id(period), vehicle_tag)


def commitment_key(programme_id: int, commitment: bytes) -> bytes:
    """Key of a paid claim, by its commitment."""
    return make_key(PREFIX_MOBILITY, _COMMITMENT, _id(programme_id), commitment)


def trip_key(programme_id: int, account: bytes, trip_id: bytes) -> bytes:
    """Key marking a trip id as paid to an account in a programme."""
    return make_key(PREFIX_MOBILITY, _TRIP, _id(programme_id), account, trip_id)
