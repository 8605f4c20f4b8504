"""Request and response bodies of the REST API, as msgspec Structs.

They are declared once, in cityledger/wire/views.py, so that the SDK decodes exactly what the API
serves; this module keeps the names the API code imports. One definition serves decoding request
bodies, encoding responses, and the JSON Schemas merged into /openapi.json.
"""

from __future__ import annotations

from ..wire.views import (
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
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "AccountView",
    "Attribute",
    "BatchView",
    "BlockView",
    "CheckView",
    "Encoding",
    "ErrorBody",
    "ErrorDetail",
    "EventView",
    "HealthView",
    "ProofView",
    "QueryView",
    "StateView",
    "StatusView",
    "SubmitBatchBody",
    "SubmitTxBody",
    "SubmitView",
    "TxResultView",
    "TxStatusView",
]
