"""The did:city method: identifier generation and syntax, multibase keys, W3C DID documents.

    did:city:<base58btc(SHA-256("cityledger/did/1" 0x00 || canonical(controller) || salt)[:16])>

The identifier is self-certifying: anyone can recompute it from the DID's initial controller
(a k-of-n key set) and the salt the creator chose, so no one can claim a DID for keys they do not
hold. Device DIDs use the device's own key as the controller and an empty salt.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ...core.encoding import encode
from ...core.hashing import sha256
from ...core.keys import SCHEME_ED25519, SCHEME_P256, PublicKey, Signer
from .messages import DID_PREFIX, KIND_NAMES, PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION, DidRecord

DOMAIN_DID = b"cityledger/did/1\x00"
ID_BYTES = 16
CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
CONTROLLER_FRAGMENT = "controller-"
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58)}
_MULTICODEC = {SCHEME_ED25519: b"\xed\x01", SCHEME_P256: b"\x80\x24"}  # ed25519-pub, p256-pub
DID_CACHE_ENTRIES = 65_536  # DIDs computed and checked, remembered (pure functions; ~10 MB at most)
MAX_CACHED_SALT = 64  # longer salts (never used by the ledger's own DIDs) are not cached
_DID_RE = re.compile(r"did:city:[1-9A-HJ-NP-Za-km-z]{1,32}")  # fullmatch: "$" would admit a trailing "\n"


def b58encode(data: bytes) -> str:
    """Base58btc (Bitcoin alphabet) text of bytes."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rest = divmod(number, 58)
        out.append(_B58[rest])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Bytes of base58btc text; raise ValueError on a character outside the alphabet."""
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError(f"base58: invalid character {char!r}")
        number = number * 58 + _B58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * zeros + body


def compute_did(controller: Signer, salt: bytes) -> str:
    """The DID that a controller and a salt generate."""
    if len(salt) > MAX_CACHED_SALT:
        return _derive_did(encode(controller), salt)
    return _cached_did(encode(controller), bytes(salt))


def _derive_did(controller: bytes, salt: bytes) -> str:
    return DID_PREFIX + b58encode(sha256(DOMAIN_DID + controller + salt)[:ID_BYTES])


_cached_did = lru_cache(maxsize=DID_CACHE_ENTRIES)(_derive_did)


def is_did(text: str) -> bool:
    """True if text is a syntactically valid did:city DID."""
    if not isinstance(text, str) or not _DID_RE.fullmatch(text):
        return False
    return _is_canonical_id(text[len(DID_PREFIX):])


# Pure functions of short texts (the pattern above bounds them to 32 characters), called for every
# device lookup: cached, since base58 in Python costs more than the rest of a transfer's checks.
@lru_cache(maxsize=DID_CACHE_ENTRIES)
def _is_canonical_id(ident: str) -> bool:
    raw = b58decode(ident)
    return len(raw) == ID_BYTES and b58encode(raw) == ident


def method_specific_id(did: str) -> str:
    """The part after 'did:city:'."""
    return did[len(DID_PREFIX):]


def compute_multikey(key: PublicKey) -> str:
    """The publicKeyMultibase of a key: 'z' + base58btc(multicodec prefix || key bytes)."""
    return "z" + b58encode(_MULTICODEC[key.scheme] + key.key)


def parse_multikey(text: str) -> PublicKey:
    """The public key in a publicKeyMultibase value; raise ValueError otherwise."""
    if not text.startswith("z"):
        raise ValueError("publicKeyMultibase: expected base58btc ('z' prefix)")
    raw = b58decode(text[1:])
    for scheme, prefix in _MULTICODEC.items():
        if raw.startswith(prefix):
            return PublicKey(scheme, raw[len(prefix):])
    raise ValueError("publicKeyMultibase: not an Ed25519 or P-256 key")


def _method(did: str, fragment: str, key: PublicKey) -> dict[str, Any]:
    return {"id": f"{did}#{fragment}", "type": "Multikey", "controller": did,
            "publicKeyMultibase": compute_multikey(key)}


def render_document(record: DidRecord) -> dict[str, Any]:
    """The W3C DID Core document (JSON-LD) of a DID; a deactivated DID keeps no keys or services."""
    did = record.did
    doc: dict[str, Any] = {"@context": list(CONTEXTS), "id": did, "controller": did}
    if record.deactivated:
        return doc
    controller_ids = [f"{CONTROLLER_FRAGMENT}{i + 1}" for i in range(len(record.controller.keys))]
    methods = [_method(did, frag, key) for frag, key in zip(controller_ids, record.controller.keys)]
    methods += [_method(did, vk.fragment, vk.key) for vk in record.keys]
    doc["verificationMethod"] = methods
    for purpose in (PURPOSE_AUTHENTICATION, PURPOSE_ASSERTION):
        refs = [f"{did}#{vk.fragment}" for vk in record.keys if purpose in vk.purposes]
        if refs:
            doc[purpose] = refs
    doc["capabilityInvocation"] = [f"{did}#{frag}" for frag in controller_ids]
    if record.services:
        doc["service"] = [{"id": f"{did}#{s.fragment}", "type": s.type, "serviceEndpoint": s.endpoint}
                          for s in record.services]
    return doc


def render_resolution(record: DidRecord | None, did: str) -> dict[str, Any]:
    """A DID resolution result: document, document metadata and resolution metadata."""
    if record is None:
        return {"didDocument": None, "didDocumentMetadata": {},
                "didResolutionMetadata": {"error": "notFound", "contentType": "application/did+ld+json"}}
    metadata = {
        "versionId": str(record.version),
        "deactivated": record.deactivated,
        "cityledger:kind": KIND_NAMES[record.kind],
        "cityledger:createdHeight": record.created_height,
        "cityledger:updatedHeight": record.updated_height,
        "cityledger:controllerThreshold": record.controller.threshold,
    }
    return {"didDocument": render_document(record), "didDocumentMetadata": metadata,
            "didResolutionMetadata": {"contentType": "application/did+ld+json"}}
