"""Every state key of identity, built in one place.

DIDs are keyed by their method-specific identifier; anchored AnonCreds objects by the SHA-256 of
their identifier (identifiers may be longer than a key part); status lists by registry and height.
"""

from ...core.hashing import sha256
from ...core.statekeys import PREFIX_IDENTITY, collection_prefix, make_key

_DID = 0x01
_SCHEMA = 0x02
_CRED_DEF = 0x03
_REV_REG_DEF = 0x04
_STATUS_LIST = 0x05
_STATUS_LIST_LATEST = 0x06
_ACCREDITATION = 0x07

DIDS_PREFIX = collection_prefix(PREFIX_IDENTITY, _DID)
SCHEMAS_PREFIX = collection_prefix(PREFIX_IDENTITY, _SCHEMA)
CRED_DEFS_PREFIX = collection_prefix(PREFIX_IDENTITY, _CRED_DEF)
REV_REG_DEFS_PREFIX = collection_prefix(PREFIX_IDENTITY, _REV_REG_DEF)
STATUS_LISTS_PREFIX = collection_prefix(PREFIX_IDENTITY, _STATUS_LIST)
STATUS_LIST_LATEST_PREFIX = collection_prefix(PREFIX_IDENTITY, _STATUS_LIST_LATEST)
ACCREDITATIONS_PREFIX = collection_prefix(PREFIX_IDENTITY, _ACCREDITATION)


def did_key(method_specific_id: str) -> bytes:
    """Key of a DID record."""
    return make_key(PREFIX_IDENTITY, _DID, method_specific_id.encode())


def schema_key(schema_id: str) -> bytes:
    """Key of an anchored schema."""
    return make_key(PREFIX_IDENTITY, _SCHEMA, sha256(schema_id.encode()))


def cred_def_key(cred_def_id: str) -> bytes:
    """Key of an anchored credential definition."""
    return make_key(PREFIX_IDENTITY, _CRED_DEF, sha256(cred_def_id.encode()))


def rev_reg_def_key(rev_reg_def_id: str) -> bytes:
    """Key of an anchored revocation registry definition."""
    return make_key(PREFIX_IDENTITY, _REV_REG_DEF, sha256(rev_reg_def_id.encode()))


def status_list_key(rev_reg_def_id: str, timestamp: int) -> bytes:
    """Key of a registry's status list as anchored at `timestamp` (a ledger height)."""
    return make_key(PREFIX_IDENTITY, _STATUS_LIST, sha256(rev_reg_def_id.encode()), timestamp.to_bytes(8, "big"))


def status_list_latest_key(rev_reg_def_id: str) -> bytes:
    """Key of the timestamp of a registry's latest status list."""
    return make_key(PREFIX_IDENTITY, _STATUS_LIST_LATEST, sha256(rev_reg_def_id.encode()))


def accreditation_key(did: str, credential_type: str) -> bytes:
    """Key of an issuer's accreditation for one credential type."""
    return make_key(PREFIX_IDENTITY, _ACCREDITATION, did.encode(), credential_type.encode())
