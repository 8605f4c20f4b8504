"""Request bodies of the identity routes (api/routes/identity.py), sent by the SDK's IdentityClient.

Their answers are mostly W3C and AnonCreds documents whose shapes those standards own, so they
travel as JSON objects and are not declared here; a publication's state (PublicationView) is ours.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class PublishBody(_Body):
    """POST /issuers/{did}/publish: anchor one credential type of the issuer."""

    credential_type: str


class OfferBody(_Body):
    """POST /issuers/{did}/offers: the values the office certifies and its own reference."""

    credential_type: str
    values: dict[str, str | int]
    reference: str


class CredentialRequestBody(_Body):
    """POST /issuers/{did}/credentials: the holder's identity/1.0/credential-request message."""

    thread: str
    request: dict[str, Any]
    type: str = "identity/1.0/credential-request"


class RevokeBody(_Body):
    """POST /issuers/{did}/revocations: the office's references of the credentials to revoke."""

    references: list[str]


class Predicate(_Body):
    """One predicate: attribute name, '>=', '>', '<=' or '<', and an integer."""

    name: str
    p_type: str
    p_value: int


class PresentationRequestBody(_Body):
    """POST /verifier/requests: attributes to reveal and predicates over one credential type."""

    credential_type: str
    reveal: list[str] = []
    predicates: list[Predicate] = []
    name: str = "presentation-request"
    non_revoked: bool = True


class VerifyBody(_Body):
    """POST /verifier/verify: a request this verifier made and the holder's presentation (JSON or text)."""

    request: dict[str, Any]
    presentation: dict[str, Any] | str


class DeviceMessageBody(_Body):
    """POST /devices/{did}/verify: a payload and the device's signature over it, both hex."""

    payload: str
    signature: str


class PublicationView(msgspec.Struct):
    """POST /issuers/{did}/publish (202) and GET /issuers/{did} `publications`: one credential type's publication.

    state: "unpublished", "preparing" (step "definition", "registry" with percent of its tails file,
    "anchoring"), "published" (with the anchored ids) or "failed" (with the reason; POST again to retry).
    """

    credential_type: str
    state: str
    step: str
    percent: int
    reason: str
    schema_id: str
    cred_def_id: str
    rev_reg_id: str


IDENTITY_BODY_TYPES = (PublishBody, OfferBody, CredentialRequestBody, RevokeBody, PresentationRequestBody,
                       VerifyBody, DeviceMessageBody)
# The identity routes' answers declared here (the rest are the standards' documents).
IDENTITY_VIEW_TYPES = (PublicationView,)
