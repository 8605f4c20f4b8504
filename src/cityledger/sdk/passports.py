"""Battery passports for programs: the operator's signed update and a reader's request body.

    body = sign_put(chain_id, [maker_key], operator_did, base=0, document=doc)   # the operator
    stored = client.put_passport(passport_id, body)      # the tier hashes to anchor on chain
    body = read_body("legitimate", request, presentation)                        # a reader
    document = client.read_passport(passport_id, body).document
    auth = sign_log_read(chain_id, [maker_key], operator_did, passport_id, client.status().height)
    log = client.get_passport_log(passport_id, auth)      # the operator or the battery's owner

`request` comes from POST /verifier/requests for the tier's credential type
(offchain/passport/access.TIER_CREDENTIALS), revealing "holder_did"; `presentation` from the
reader's wallet (sdk.IdentityClient.present).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..core.keys import SCHEME_NAMES, PrivateKey
from ..offchain.passport import READER_ATTRIBUTE, TIER_CREDENTIALS, compute_log_read_payload, compute_put_payload
from ..offchain.passport.store import canonical_passport_id
from ..wire.batteries import OperatorSignature, PutPassportBody, ReadPassportBody

__all__ = ["READER_ATTRIBUTE", "TIER_CREDENTIALS", "read_body", "sign_log_read", "sign_put"]


def sign_put(chain_id: str, keys: Sequence[PrivateKey], operator: str, base: int,
             document: Mapping[str, Any]) -> PutPassportBody:
    """The PUT body storing `document` over `base` stored tier versions, signed by the operator's controller keys."""
    passport_id = canonical_passport_id(document["metadata"]["passportIdentifier"])
    payload = compute_put_payload(chain_id, passport_id, base, document)
    signatures = [OperatorSignature(scheme=SCHEME_NAMES[key.scheme], key=key.public_key.key.hex(),
                                    signature=key.sign(payload).hex()) for key in keys]
    return PutPassportBody(operator=operator, base=base, document=dict(document), signatures=signatures)


def read_body(tier: str, request: Mapping[str, Any], presentation: str) -> ReadPassportBody:
    """The body of a restricted read."""
    return ReadPassportBody(tier=tier, request=dict(request), presentation=presentation)


def sign_log_read(chain_id: str, keys: Sequence[PrivateKey], reader: str, passport_id: str,
                  height: int) -> dict[str, Any]:
    """The query parameters that let `reader` (the operator's DID, or the battery owner's address) read a
    passport's access log, signed by its controller keys (or the owner's key) at a recent `height`."""
    passport_id = canonical_passport_id(passport_id)
    payload = compute_log_read_payload(chain_id, passport_id, reader, height)
    return {"reader": reader, "height": height,
            "signature": [f"{SCHEME_NAMES[key.scheme]}:{key.public_key.key.hex()}:{key.sign(payload).hex()}"
                          for key in keys]}
