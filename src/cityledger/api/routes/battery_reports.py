"""State-of-health reports in batches, and end-of-first-life alerts (offchain/passport/reports.py).

    POST /passports/reports            {reports: [{passport, sequence, report, signature}]}   any relay
    GET  /passports/{id}/alerts?reader=&height=&signature=                                    operator or owner
    GET  /passports/{id}/recycled_content                   declared recycled content against Art. 8, to anyone

Every report's BMS signature is verified against the battery device's current key and its
sequence against the chain's and the service's last; a batch with any refused report is refused
whole (400 naming `reports[i].field`) and stores nothing. The accepted batch is stored encrypted
and its root committed on chain with batteries/1.0/anchor_report_root, signed by the node's
passport-service key ([passports] anchor); the answer comes once that block is committed. A
node without that key answers 503. Alerts are answered as the access log is: to the passport's
responsible operator or the battery's owner, signed over the log read payload.
"""

from __future__ import annotations

import functools
import threading

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...modules.batteries import get_passport, is_passport_id
from ...modules.batteries.messages import REPORTING_STAGES
from ...core.keys import PublicKey
from ...modules.devices import get_device
from ...modules.devices.messages import STATUS_ACTIVE
from ...modules.identity.keeper import KEEPER as IDENTITY
from ...modules.identity.messages import PURPOSE_AUTHENTICATION
from ...offchain.passport import PassportError
from ...offchain.passport.anchoring import commit_root
from ...offchain.passport.reports import (MAX_REPORT_BATCH, SOH_ALERT_PERCENT, SignedReport, verify_reports,
                                           verify_signatures)
from ...offchain.passport.store import ReportBook
from ...offchain.passport.content import check_recycled_content
from ...wire.batteries import (CONTENT_VIEW_TYPES, REPORT_BODY_TYPES, REPORT_VIEW_TYPES, AlertsView, AlertView,
                               ContentTargetView, ElementContentView, RecycledContentView, ReportBatchBody,
                               ReportBatchView)
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body
from .batteries import PUBLIC_READER, PassportApi, _body_doc, _doc, _export, _forbidden
from .common import MAX_INT64, add_schemas

# A batch of MAX_REPORT_BATCH reports of up to a few KiB of JSON each.
MAX_REPORT_BATCH_BODY_BYTES = 64 * 1024 * 1024
_DECODER = msgspec.json.Decoder(ReportBatchBody)


class ReportApi:
    """What the report routes use: the passport API, the report book, the service's report chain."""

    def __init__(self, api: PassportApi) -> None:
        self.api, self.book = api, ReportBook(api.store)
        self.lock = threading.Lock()  # one batch at a time: sequences and batch numbers in order

    def ingest(self, body: ReportBatchBody) -> ReportBatchView:
        """Verify, store and commit one batch (in a worker thread); raise ApiError."""
        anchoring = getattr(self.api.node, "passport_anchoring", None)
        signed = [_signed(index, item) for index, item in enumerate(body.reports)]
        state = self.api.node.store
        if anchoring is None:
            # Bad reports are the sender's error whatever this node runs: checked first (400), and only
            # a batch that would be accepted learns that this node does not relay reports (503).
            self._check(signed, state, verify_signatures)
            raise ApiError(503, "passport/no_service", "passports: this node has no passport-service key to "
                                                        "commit reports with ([passports] anchor is off)")
        with self.lock:
            try:
                pending = self.book.pending()  # a batch stored before a failure or crash goes first
                if pending is not None:
                    self.book.confirm(pending.seq, commit_root(anchoring.reports, pending.seq, pending.root,
                                                               pending.size))
            except RuntimeError as exc:
                raise ApiError(503, "passport/commit", f"reports: an earlier batch is not committed yet: {exc}")
            verified = self._check(signed, state, anchoring.pool.verify)
            batch = self.book.add_batch(verified)
            try:
                height = commit_root(anchoring.reports, batch.seq, batch.root, batch.size)
            except RuntimeError as exc:
                raise ApiError(503, "passport/commit", f"reports: stored as batch {batch.seq}, its root not yet "
                                                       f"committed ({exc}); it goes before the next batch")
            self.book.confirm(batch.seq, height)
        return ReportBatchView(accepted=batch.size, seq=batch.seq, root=batch.root.hex(), height=height)


    def _check(self, signed: list[SignedReport], state, verify) -> list:
        """The batch's reports verified (schema, sequence, BMS signatures); raise ApiError 400 naming one."""
        try:
            keys = functools.lru_cache(maxsize=None)(functools.partial(_keys_of, state))  # once per device
            last = self.book.last_seqs(report.passport_id for report in signed)  # one query, not one a passport
            return verify_reports(self.api.node.app.chain_id, signed, lambda pid: _lookup(state, pid), keys,
                                  lambda pid: last.get(pid, 0), verify)
        except PassportError as exc:
            raise invalid_body(f"{exc.field}: {exc.message}") from None


def _keys_of(state, did: str) -> list[PublicKey] | str:
    """A battery device's current keys (check_device_message's checks), or why it may not sign."""
    record = get_device(state, did)
    if record is None or record.status != STATUS_ACTIVE:
        return f"device: {did} is not an active registered device"
    return IDENTITY.keys_for(IDENTITY.get_did(state, did), PURPOSE_AUTHENTICATION)


def _signed(index: int, item) -> SignedReport:
    """One body item as a SignedReport; raise ApiError naming it."""
    try:
        passport = item.passport if item.passport == item.passport.lower() else ""
        signature = bytes.fromhex(item.signature) if len(item.signature) <= 256 else b""
    except ValueError:
        signature = b""
    if not signature:
        raise invalid_body(f"reports[{index}].signature: expected the BMS signature in hex")
    if not 1 <= item.sequence <= MAX_INT64:
        raise invalid_body(f"reports[{index}].sequence: expected 1 to {MAX_INT64}, got {item.sequence}")
    return SignedReport(passport, item.sequence, item.report, signature)


def _lookup(state, passport_id: str) -> tuple[str, int] | None:
    """(battery device, chain report count) of a passport that may report now, or None."""
    record = get_passport(state, passport_id) if is_passport_id(passport_id) else None
    if record is None or record.stage not in REPORTING_STAGES:
        return None
    return record.battery, record.report_count


def include_battery_reports(app: FastAPI, api: PassportApi) -> None:
    """Add the report and alert routes to an app, and their schemas to its OpenAPI document."""
    reports = ReportApi(api)
    router = APIRouter(tags=["batteries"])

    @router.post("/passports/reports", summary="Relay: a batch of BMS-signed state-of-health reports",
                 openapi_extra=_body_doc(ReportBatchBody), responses=_doc("ReportBatchView", 400, 503))
    async def post_reports(request: Request) -> Response:
        data = await read_body(request, MAX_REPORT_BATCH_BODY_BYTES)
        try:
            body = decode_json(data, _DECODER)
        except UnicodeDecodeError as exc:
            raise invalid_body(f"body: not valid UTF-8 (byte {exc.start})") from None
        if not 1 <= len(body.reports) <= MAX_REPORT_BATCH:
            raise invalid_body(f"reports: expected 1 to {MAX_REPORT_BATCH}, got {len(body.reports)}")
        return json_response(await run_in_threadpool(reports.ingest, body))

    @router.get("/passports/{passport_id}/alerts", summary="End-of-first-life alerts, to the operator or the owner",
                responses=_doc("AlertsView", 400, 403))
    def get_alerts(passport_id: str, reader: str = Query("", max_length=256),
                   height: int = Query(0, ge=0, le=MAX_INT64), signature: list[str] = Query([])) -> Response:
        passport_id = api.passport_id(passport_id)
        if not reader:
            raise _forbidden("reader", "expected the passport's operator DID or the address owning its battery, "
                                       "with a signature over the log read payload (sdk.passports.sign_log_read)")
        api.authorise_log_read(passport_id, reader, height, signature)
        alerts = [AlertView(sequence=seq, batch=batch, height=at)
                  for seq, batch, at in reports.book.alerts(passport_id)]
        return json_response(AlertsView(passport_id=passport_id, threshold_percent=SOH_ALERT_PERCENT, alerts=alerts))

    @router.get("/passports/{passport_id}/recycled_content", summary="Declared recycled content against Art. 8",
                responses=_doc("RecycledContentView", 400, 404))
    def get_recycled_content(passport_id: str) -> Response:
        passport_id = api.passport_id(passport_id)
        document = _export(api, passport_id, "public", PUBLIC_READER).document
        elements = [ElementContentView(element=e["element"], declared_percent=e["declared_percent"],
                                       targets=[ContentTargetView(**t) for t in e["targets"]])
                    for e in check_recycled_content(document)]
        return json_response(RecycledContentView(passport_id=passport_id, elements=elements))

    app.include_router(router)
    add_schemas(app, REPORT_BODY_TYPES + REPORT_VIEW_TYPES + CONTENT_VIEW_TYPES)
