"""Bodies and answers of the battery passport routes (api/routes/batteries.py).

A passport document is a Tractus-X BatteryPass 6.1.0 JSON object whose shape that data model owns,
so it travels as a JSON object inside these Structs.
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error, so typos are reported."""


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class OperatorSignature(_Body):
    """One controller key of the operator's DID and its signature over the put payload, both hex."""

    scheme: str  # "ed25519" or "p256"
    key: str
    signature: str


class PutPassportBody(_Body):
    """PUT /passports/{id}: a full document, signed by the responsible operator's controller key(s).

    `base` is the number of tier versions stored for this passport when the update was made (0 for
    a new passport; GET /passports/{id} answers it), so a signed old document cannot be replayed.
    """

    operator: str
    base: int
    document: dict[str, Any]
    signatures: list[OperatorSignature]


class ReadPassportBody(_Body):
    """POST /passports/{id}/read: a restricted tier, a request made by POST /verifier/requests, the presentation."""

    tier: str
    request: dict[str, Any]
    presentation: dict[str, Any] | str


class TierHashView(_View):
    """One stored version of one tier and the SHA-256 (hex) the chain records for it."""

    tier: str
    version: int
    hash: str


class PassportStoredView(_View):
    """What a PUT stored: the versions written, and the latest version of every tier (the hashes to anchor)."""

    passport_id: str
    written: list[TierHashView]
    latest: list[TierHashView]
    base: int


class PassportDocumentView(_View):
    """A passport document at a tier (public ⊂ legitimate ⊂ authority), with the latest tier hashes."""

    passport_id: str
    tier: str
    document: dict[str, Any]
    latest: list[TierHashView]
    base: int


class AccessEntryView(_View):
    """One read of a restricted tier, hash-chained to the entry before it."""

    seq: int
    passport_id: str
    tier: str
    version: int
    reader_did: str
    height: int
    time_s: int
    prev: str
    hash: str


class HeadProofView(_View):
    """That the passport's log head after `count` entries is leaf `index` of `size` under the service's anchor `seq`."""

    seq: int
    height: int
    count: int
    head: str
    index: int
    size: int
    path: list[str]


class AccessLogView(_View):
    """A page of a passport's own access log, its head, and the anchors on chain that cover it with their proofs.

    `service` is the passport service's DID whose roots (batteries/log_root) the proofs lead to ("" when
    this node anchors none).
    """

    passport_id: str
    entries: list[AccessEntryView]
    head_seq: int
    head_hash: str
    service: str = ""
    anchors: list[HeadProofView] = []


BATTERY_BODY_TYPES = (PutPassportBody, ReadPassportBody, OperatorSignature)
BATTERY_VIEW_TYPES = (PassportStoredView, PassportDocumentView, AccessLogView, TierHashView, AccessEntryView,
                      HeadProofView)


class SignedReportBody(_Body):
    """One state-of-health report as the battery's BMS signed it (offchain/passport/reports.py)."""

    passport: str
    sequence: int
    report: dict[str, Any]  # the values under "dynamic" and a "salt" of 32 to 128 hex digits
    signature: str  # hex: the BMS key's signature over batteries' report payload


class ReportBatchBody(_Body):
    """POST /passports/reports: up to MAX_REPORT_BATCH signed reports, from any relay."""

    reports: list[SignedReportBody]


class ReportBatchView(_View):
    """A committed batch: how many reports, its sequence, its root and the height it landed at."""

    accepted: int
    seq: int
    root: str
    height: int


class AlertView(_View):
    """A report at or below the end-of-first-life threshold: its sequence and the batch that committed it."""

    sequence: int
    batch: int
    height: int | None


class AlertsView(_View):
    """A passport's end-of-first-life alerts, to its operator or its battery's owner (no value: read the report)."""

    passport_id: str
    threshold_percent: int
    alerts: list[AlertView]


REPORT_BODY_TYPES = (ReportBatchBody, SignedReportBody)
REPORT_VIEW_TYPES = (ReportBatchView, AlertsView, AlertView)


class ContentTargetView(_View):
    """One Art. 8 minimum (per mille of the element, from `by`, YYYYMMDD) and whether the declared share meets it."""

    per_mille: int
    by: int
    reference: str
    met: bool | None


class ElementContentView(_View):
    """One element's declared recycled share (percent, from the public tier) against its minimums."""

    element: str
    declared_percent: float | None
    targets: list[ContentTargetView]


class RecycledContentView(_View):
    """GET /passports/{id}/recycled_content: the declared recycled content against Art. 8 (public)."""

    passport_id: str
    elements: list[ElementContentView]


CONTENT_VIEW_TYPES = (RecycledContentView, ElementContentView, ContentTargetView)
