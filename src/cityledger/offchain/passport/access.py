"""Who may write and who may read a passport: the operator's signed update, the readers' credentials.

A new version of a passport is stored only when the responsible economic operator signs it: the
controller key(s) of the operator's DID sign `compute_put_payload`, which binds the chain, the
passport, the number of tier versions the update builds on (so an old signed document cannot be
replayed over a newer one) and the document's hash. A restricted tier is served only against a
presentation of the credential type TIER_CREDENTIALS names, revealing READER_ATTRIBUTE (the reader
DID the access log records), checked by the node's verifier with revocation.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from ...core.encoding import encode
from ..identity.types import BATTERY_AUTHORITY, BATTERY_LEGITIMATE_INTEREST
from .tiers import canonical_json
from .types import MAX_READER_DID_CHARS, AccessDenied, PassportError, Tier

# The one table of which credential opens which restricted tier (Annex XIII points 2 and 4, point 3).
TIER_CREDENTIALS: dict[Tier, str] = {"legitimate": BATTERY_LEGITIMATE_INTEREST, "authority": BATTERY_AUTHORITY}
READER_ATTRIBUTE = "holder_did"
PUT_DOMAIN = b"cityledger/passport-put/1\x00"
LOG_READ_DOMAIN = b"cityledger/passport-log-read/1\x00"


def compute_document_hash(document: Mapping[str, Any]) -> bytes:
    """SHA-256 of a whole document's canonical JSON."""
    return hashlib.sha256(canonical_json(dict(document))).digest()


def compute_put_payload(chain_id: str, passport_id: str, base: int, document: Mapping[str, Any]) -> bytes:
    """What the operator's controller key(s) sign to store `document` over `base` stored tier versions."""
    return PUT_DOMAIN + encode([chain_id, passport_id, base, compute_document_hash(document)])


def compute_log_read_payload(chain_id: str, passport_id: str, reader: str, height: int) -> bytes:
    """What the operator's controller key(s) or the battery owner's key sign to read a passport's access log."""
    return LOG_READ_DOMAIN + encode([chain_id, passport_id, "log", reader, height])


def required_credential(tier: str) -> str:
    """The credential type that opens a restricted tier; raise PassportError for public or unknown tiers."""
    if tier not in TIER_CREDENTIALS:
        raise PassportError("tier", f"expected one of {', '.join(TIER_CREDENTIALS)} (the public tier needs no "
                                    f"credential: GET /passports/{{id}}), got {str(tier)[:40]!r}")
    return TIER_CREDENTIALS[tier]  # type: ignore[index]


def check_reader_request(tier: str, request: Mapping[str, Any]) -> None:
    """Raise AccessDenied unless a (sealed) request asks for the tier's credential, its reader and revocation."""
    credential = required_credential(tier)
    attributes = request.get("requested_attributes")
    wanted = attributes.get(f"attr_{READER_ATTRIBUTE}") if isinstance(attributes, Mapping) else None
    if not isinstance(wanted, Mapping) or wanted.get("name") != READER_ATTRIBUTE:
        raise AccessDenied("request", f"must reveal {READER_ATTRIBUTE!r} (the reader the access log records)")
    restrictions = wanted.get("restrictions")
    names = {r.get("schema_name") for r in restrictions if isinstance(r, Mapping)} \
        if isinstance(restrictions, list) else set()
    if names != {credential}:
        raise AccessDenied("request", f"the {tier} tier needs a presentation of {credential!r}, "
                                      f"the request asks for {sorted(map(str, names))}")
    if not isinstance(request.get("non_revoked"), Mapping):
        raise AccessDenied("request", "must ask for non-revocation (made with non_revoked: true)")


def reader_of(revealed: Mapping[str, Any]) -> str:
    """The reader DID a verified presentation revealed; raise AccessDenied if it is not a DID."""
    value = revealed.get(f"attr_{READER_ATTRIBUTE}")
    if not isinstance(value, str) or not value.startswith("did:") or len(value) > MAX_READER_DID_CHARS \
            or not value.isprintable():
        raise AccessDenied("presentation", f"the credential's {READER_ATTRIBUTE} is not a DID of at most "
                                           f"{MAX_READER_DID_CHARS} characters")
    return value
