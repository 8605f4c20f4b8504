"""cityledger.wire: the JSON shapes of the REST API, declared once for the node and for its clients.

Why it sits here: api/ serves these shapes and sdk/ decodes them, but the two are siblings on one
floor (offchain, api, sdk) that must not import each other, and the SDK must stay installable as a
client without FastAPI or uvicorn. So the shapes live in their own small package below both. It
imports msgspec and nothing of cityledger, so it can sit on the bottom floor beside core/ and any
floor above may use it. api/schemas.py and sdk/models.py re-export these classes under their old
names; tests/test_wire_schema.py checks that every route answers one of them and the SDK reads them.
"""

from .identity import (
    IDENTITY_BODY_TYPES,
    IDENTITY_VIEW_TYPES,
    CredentialRequestBody,
    DeviceMessageBody,
    OfferBody,
    Predicate,
    PresentationRequestBody,
    PublicationView,
    PublishBody,
    RevokeBody,
    VerifyBody,
)
from .views import (
    REQUEST_TYPES,
    RESPONSE_TYPES,
    AccountView,
    Attribute,
    BatchView,
    BlockView,
    CheckView,
    Encoding,
    ErrorBody,
    ErrorDetail,
    EventView,
    HealthView,
    ProofView,
    QueryView,
    StateView,
    StatusView,
    SubmitBatchBody,
    SubmitTxBody,
    SubmitView,
    TxResultView,
    TxStatusView,
)

__all__ = [
    "IDENTITY_BODY_TYPES",
    "IDENTITY_VIEW_TYPES",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "AccountView",
    "Attribute",
    "BatchView",
    "BlockView",
    "CheckView",
    "CredentialRequestBody",
    "DeviceMessageBody",
    "Encoding",
    "ErrorBody",
    "ErrorDetail",
    "EventView",
    "HealthView",
    "OfferBody",
    "Predicate",
    "PresentationRequestBody",
    "PublicationView",
    "ProofView",
    "PublishBody",
    "QueryView",
    "RevokeBody",
    "StateView",
    "StatusView",
    "SubmitBatchBody",
    "SubmitTxBody",
    "SubmitView",
    "TxResultView",
    "TxStatusView",
    "VerifyBody",
]
