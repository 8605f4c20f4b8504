"""Battery passports off chain: Tractus-X BatteryPass validation, Annex XIII access tiers, encrypted storage."""

from .access import (READER_ATTRIBUTE, TIER_CREDENTIALS, check_reader_request, compute_document_hash,
                     compute_log_read_payload, compute_put_payload, reader_of, required_credential)
from .accesslog import verify_chain
from .store import PassportStore, load_or_create_master_key, new_master_key
from .tiers import TIER_TABLE, compute_tier_hash, merge, split
from .types import (TIERS, AccessDenied, AccessEntry, LogBroken, NotFound, PassportError, PassportInvalid,
                    SchemaIssue, Tier, TierVersion, VersionError)
from .validate import check_document, get_predecessor, load_document, validate_document

__all__ = [
    "READER_ATTRIBUTE",
    "TIER_CREDENTIALS",
    "check_reader_request",
    "compute_document_hash",
    "compute_log_read_payload",
    "compute_put_payload",
    "reader_of",
    "required_credential",
    "AccessDenied",
    "AccessEntry",
    "LogBroken",
    "NotFound",
    "PassportError",
    "PassportInvalid",
    "PassportStore",
    "SchemaIssue",
    "TIERS",
    "TIER_TABLE",
    "Tier",
    "TierVersion",
    "VersionError",
    "check_document",
    "compute_tier_hash",
    "get_predecessor",
    "load_document",
    "load_or_create_master_key",
    "merge",
    "new_master_key",
    "split",
    "validate_document",
    "verify_chain",
]
