"""Battery passports over REST: the node's passport service (offchain/passport, hosted by node/passports.py).

    PUT  /passports/{id}        {operator, base, document, signatures}  the responsible operator stores a new
                                                                        version; answers the tier hashes to anchor
    GET  /passports/{id}                                                the public tier, to anyone
    POST /passports/{id}/read   {tier, request, presentation}           a restricted tier, against a presentation
                                                                        of the tier's credential (logged)
    GET  /passports/{id}/log?after_seq=&limit=&reader=&height=&signature=  the passport's access log entries,
                                                                        to its operator or its battery's owner

A PUT is authenticated by signatures of the operator DID's controller key(s) over
offchain/passport/access.compute_put_payload (threshold of the controller, as a transaction would
be). The operator must be the passport's responsible operator on chain, or, for a passport not yet
registered there, an organisation accredited as battery manufacturer. A read request is made by
POST /verifier/requests for the tier's credential type (access.TIER_CREDENTIALS), revealing
holder_did, with non-revocation; the node's verifier checks it at the height it pins.

The log is answered only to the passport's responsible operator (signatures of its DID controller's
keys, threshold as for a PUT) or to the account that owns the battery's device (a signature by that
account's key), over offchain/passport/access.compute_log_read_payload: chain id, passport id, "log",
the reader and a recent height (at most MAX_LOG_READ_AGE blocks old, so a signature is not replayed
far). Each `signature` query parameter is "scheme:key hex:signature hex".
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...core.keys import MAX_SIGNER_KEYS, PublicKey, Signer, compute_address, scheme_from_name, verify_signature
from ...core.types import address_from_str
from ...modules.batteries import ROLE_MANUFACTURER, get_passport
from ...modules.batteries.messages import CLOSED_STAGES
from ...modules.devices import get_device
from ...modules.identity.handlers import get_did, is_accredited
from ...modules.identity.presentations import MAX_PRESENTATION_BYTES
from ...offchain.identity.verifier import Verifier
from ...offchain.passport import (TIERS, AccessDenied, NotFound, PassportError, PassportInvalid, PassportStore,
                                  VersionError, check_document, check_reader_request, compute_log_read_payload,
                                  compute_put_payload, reader_of, required_credential)
from ...offchain.passport.reports import overlay_dynamic
from ...offchain.passport.store import ReportBook, canonical_passport_id
from ...offchain.passport.types import MAX_DOCUMENT_BYTES, MAX_LOG_PAGE
from ...wire.batteries import (BATTERY_BODY_TYPES, BATTERY_VIEW_TYPES, AccessEntryView, AccessLogView, HeadProofView,
                               OperatorSignature, PassportDocumentView, PassportStoredView, PutPassportBody,
                               ReadPassportBody, TierHashView)
from ...wire.views import IssueView
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body, invalid_param, not_found
from ..protocols import NodeLike
from .common import MAX_INT64, add_schemas

# A document of at most MAX_DOCUMENT_BYTES of canonical JSON, pretty-printed, plus signatures.
MAX_PASSPORT_BODY_BYTES = 2 * MAX_DOCUMENT_BYTES
MAX_READ_BODY_BYTES = 1024 * 1024
MAX_LOG_READ_AGE = 100  # blocks: how old the height a log read signs may be
# Public reads are not logged, but the store's reader check wants a DID; this one names nobody.
PUBLIC_READER = "did:city:public"
_TAGS = ["batteries"]
_HEX_RE = re.compile(r"[0-9a-f]{2,256}")  # fullmatch: bytes.fromhex alone would skip whitespace
_DECODERS = {kind: msgspec.json.Decoder(kind) for kind in (PutPassportBody, ReadPassportBody)}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(view: str, *statuses: int) -> dict:
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": _ref(view)}}}}
    for status in statuses:
        out[status] = {"description": "Refused, the field named in error.field",
                       "content": {"application/json": {"schema": _ref("ErrorBody")}}}
    return out


def _body_doc(kind: type) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(kind.__name__)}}}}


def _refused(exc: PassportError) -> ApiError:
    """The API error of a passport refusal: 400 with every schema issue, 403, 404 or 409."""
    if isinstance(exc, PassportInvalid):
        issues = [IssueView(path=i.path, message=i.message) for i in exc.issues]
        return ApiError(400, "passport/invalid", f"document: {exc.message}", field="document", issues=issues)
    if isinstance(exc, AccessDenied):
        return ApiError(403, "passport/access_denied", f"{exc.field}: {exc.message}", field=exc.field)
    if isinstance(exc, NotFound):
        return ApiError(404, "api/not_found", f"{exc.field}: {exc.message}", field=exc.field)
    if isinstance(exc, VersionError):
        return ApiError(409, "passport/version", f"{exc.field}: {exc.message}", field=exc.field)
    return ApiError(400, "api/invalid_param", f"{exc.field}: {exc.message}", field=exc.field)


def _forbidden(field: str, message: str) -> ApiError:
    return ApiError(403, "passport/forbidden", f"{field}: {message}", field=field)


class PassportApi:
    """What the passport routes use: the node's store, state and verifier."""

    def __init__(self, node: NodeLike, verifier: Verifier) -> None:
        self.node = node
        self.store: PassportStore = node.passports
        self.verifier = verifier
        # One PUT at a time: its `base` check and its write must see the same stored versions.
        self.writing = threading.Lock()

    def passport_id(self, value: str) -> str:
        try:
            return canonical_passport_id(value)
        except PassportError as exc:
            raise _refused(exc) from None

    def latest(self, passport_id: str) -> tuple[list[TierHashView], int]:
        """The latest version of each stored tier, and how many tier versions are stored (the next `base`)."""
        latest, base = [], 0
        for tier in TIERS:
            versions = self.store.get_versions(passport_id, tier)
            base += len(versions)
            if versions:
                latest.append(TierHashView(tier=tier, version=versions[-1].version, hash=versions[-1].hash_hex))
        return latest, base

    def authorise_put(self, passport_id: str, body: PutPassportBody) -> bool:
        """Raise ApiError unless the operator is responsible and its controller signed; True if on chain."""
        state = self.node.store
        record = get_passport(state, passport_id)
        if record is not None and record.stage in CLOSED_STAGES:
            raise ApiError(409, "passport/closed", f"passport_id: {passport_id} is closed at stage {record.stage}")
        if record is not None and record.operator != body.operator:
            raise _forbidden("operator", f"the responsible operator of {passport_id} is {record.operator}")
        if record is None and not is_accredited(state, body.operator, ROLE_MANUFACTURER):
            raise _forbidden("operator", f"{body.operator[:200]!r} is not an organisation accredited as "
                                         f"{ROLE_MANUFACTURER} (the passport is not registered on chain yet)")
        did = get_did(state, body.operator)
        if did is None or did.deactivated:
            raise _forbidden("operator", f"no active DID {body.operator[:200]!r}")
        payload = compute_put_payload(self.node.app.chain_id, passport_id, body.base, body.document)
        signed = _count_signers(did.controller, payload, body.signatures)
        if signed < did.controller.threshold:
            raise _forbidden("signatures", f"{signed} valid signature(s) of {body.operator}'s controller keys over "
                                           f"the put payload, {did.controller.threshold} needed")
        return record is not None

    def authorise_log_read(self, passport_id: str, reader: str, height: int, signature: list[str]) -> None:
        """Raise ApiError unless `reader` is the passport's operator or its battery's owner, and signed."""
        last = self.node.store.last_height()
        if not last - MAX_LOG_READ_AGE <= height <= last:
            raise _forbidden("height", f"expected a height from {max(0, last - MAX_LOG_READ_AGE)} to {last} "
                                       f"(at most {MAX_LOG_READ_AGE} blocks old), got {height}")
        if len(signature) > MAX_SIGNER_KEYS:
            raise invalid_param(f"signature: at most {MAX_SIGNER_KEYS}")
        entries = [_parse_signature(index, text) for index, text in enumerate(signature)]
        payload = compute_log_read_payload(self.node.app.chain_id, passport_id, reader, height)
        record = get_passport(self.node.store, passport_id)
        operator = record.operator if record is not None else self.store.get_operator(passport_id)
        if reader.startswith("did:"):
            did = get_did(self.node.store, reader) if reader == operator else None
            if did is None or did.deactivated:
                raise _forbidden("reader", f"{reader[:200]!r} is not the responsible operator of {passport_id}")
            signed = _count_signers(did.controller, payload, entries)
            if signed < did.controller.threshold:
                raise _forbidden("signature", f"{signed} valid signature(s) of {reader}'s controller keys over "
                                              f"the log read payload, {did.controller.threshold} needed")
            return
        device = get_device(self.node.store, record.battery) if record is not None else None
        owner = _owner_address(reader)
        if device is None or not device.owner or device.owner != owner:
            raise _forbidden("reader", f"expected the passport's operator DID or the address owning its battery, "
                                       f"got {reader[:200]!r}")
        if not any(compute_address(Signer(1, [_public_key(e)])) == owner
                   and verify_signature(_public_key(e), payload, bytes.fromhex(e.signature)) for e in entries):
            raise _forbidden("signature", f"no valid signature by {reader}'s key over the log read payload")


def _owner_address(reader: str) -> bytes | None:
    """The address `reader` names, or None."""
    try:
        return address_from_str(reader, "reader")
    except ValueError:
        return None


def _public_key(entry: OperatorSignature) -> PublicKey:
    return PublicKey(scheme_from_name(entry.scheme), bytes.fromhex(entry.key))


def _parse_signature(index: int, text: str) -> OperatorSignature:
    """One `signature` query parameter, "scheme:key hex:signature hex"; raise ApiError if malformed."""
    parts = text.split(":")
    try:
        if len(parts) != 3 or not all(_HEX_RE.fullmatch(part) for part in parts[1:]):
            raise ValueError(text)
        entry = OperatorSignature(scheme=parts[0], key=parts[1], signature=parts[2])
        _public_key(entry), bytes.fromhex(entry.signature)
    except (ValueError, KeyError):
        raise invalid_param(f"signature[{index}]: expected 'scheme:key hex:signature hex'") from None
    return entry


def _count_signers(controller: Signer, payload: bytes, signatures: list[OperatorSignature]) -> int:
    """How many distinct controller keys validly signed `payload`; raise ApiError for malformed entries."""
    if len(signatures) > len(controller.keys):
        raise invalid_body(f"signatures: at most {len(controller.keys)}, one per controller key")
    valid: set[bytes] = set()
    for index, entry in enumerate(signatures):
        try:
            key = PublicKey(scheme_from_name(entry.scheme), bytes.fromhex(entry.key))
            signature = bytes.fromhex(entry.signature)
        except (ValueError, KeyError):
            raise invalid_body(f"signatures[{index}]: expected a scheme name and hex key and signature") from None
        if key in controller.keys and verify_signature(key, payload, signature):
            valid.add(key.key)
    return len(valid)


async def _decode(request: Request, kind: type, limit: int) -> Any:
    data = await read_body(request, limit)
    try:
        return decode_json(data, _DECODERS[kind])
    except UnicodeDecodeError as exc:
        raise invalid_body(f"body: not valid UTF-8 (byte {exc.start})") from None


def include_batteries(app: FastAPI, node: NodeLike, verifier: Verifier) -> None:
    """Add the passport routes to an app, and their body schemas to its OpenAPI document."""
    from .battery_reports import include_battery_reports  # its routes build on this file's

    api = PassportApi(node, verifier)
    include_battery_reports(app, api)  # before /passports/{id}: "reports" is no passport id
    app.include_router(passport_router(api))
    add_schemas(app, BATTERY_BODY_TYPES + BATTERY_VIEW_TYPES)


def passport_router(api: PassportApi) -> APIRouter:
    """The passport routes."""
    router = APIRouter(tags=_TAGS)

    @router.put("/passports/{passport_id}", summary="Operator: store a new version of a passport document",
                openapi_extra=_body_doc(PutPassportBody), responses=_doc("PassportStoredView", 400, 403, 409))
    async def put_passport(passport_id: str, request: Request) -> Response:
        passport_id = api.passport_id(passport_id)
        body: PutPassportBody = await _decode(request, PutPassportBody, MAX_PASSPORT_BODY_BYTES)
        if not 0 <= body.base <= MAX_INT64:
            raise invalid_body(f"base: expected 0 to {MAX_INT64}, got {body.base}")
        named = body.document.get("metadata", {}).get("passportIdentifier") \
            if isinstance(body.document.get("metadata"), dict) else None
        if not isinstance(named, str) or api.passport_id(named) != passport_id:
            raise invalid_body(f"document: $.metadata.passportIdentifier must be {passport_id}, got {named!r:.100}")
        return json_response(await run_in_threadpool(_put, api, passport_id, body))

    @router.get("/passports/{passport_id}", summary="The public tier of a passport, to anyone",
                responses=_doc("PassportDocumentView", 400, 404))
    def get_public(passport_id: str) -> Response:
        passport_id = api.passport_id(passport_id)
        return json_response(_export(api, passport_id, "public", PUBLIC_READER))

    @router.post("/passports/{passport_id}/read", summary="A restricted tier against a credential presentation",
                 openapi_extra=_body_doc(ReadPassportBody), responses=_doc("PassportDocumentView", 400, 403, 404))
    async def read_restricted(passport_id: str, request: Request) -> Response:
        passport_id = api.passport_id(passport_id)
        body: ReadPassportBody = await _decode(request, ReadPassportBody, MAX_READ_BODY_BYTES)
        presentation = _checked_read(body)
        if not api.store.get_versions(passport_id, "public"):  # before the request is spent on nothing
            raise not_found(f"passport_id: no passport {passport_id}")
        verdict = await run_in_threadpool(api.verifier.verify, body.request, presentation)
        if not verdict["verified"]:
            raise _forbidden("presentation", f"not accepted for the {body.tier} tier: {verdict['reason']}")
        try:
            reader = reader_of(verdict["revealed"])
        except PassportError as exc:
            raise _refused(exc) from None
        return json_response(await run_in_threadpool(_export, api, passport_id, body.tier, reader))

    @router.get("/passports/{passport_id}/log", summary="The access log of a passport's restricted tiers, to its "
                "operator or its battery's owner", responses=_doc("AccessLogView", 400, 403))
    def get_log(passport_id: str, after_seq: int = Query(0, ge=0, le=MAX_INT64),
                limit: int = Query(MAX_LOG_PAGE, ge=1, le=MAX_LOG_PAGE), reader: str = Query("", max_length=256),
                height: int = Query(0, ge=0, le=MAX_INT64), signature: list[str] = Query([])) -> Response:
        passport_id = api.passport_id(passport_id)
        if not reader:
            raise _forbidden("reader", "expected the passport's operator DID or the address owning its battery, "
                                       "with a signature over the log read payload (sdk.passports.sign_log_read)")
        api.authorise_log_read(passport_id, reader, height, signature)
        entries = api.store.get_log(passport_id, after_seq=after_seq, limit=limit)
        head_seq, head_hash = api.store.get_log_head(passport_id)
        views = [AccessEntryView(seq=e.seq, passport_id=e.passport_id, tier=e.tier, version=e.version,
                                 reader_did=e.reader_did, height=e.height, time_s=e.time_s, prev=e.prev_hex,
                                 hash=e.hash_hex) for e in entries]
        anchors = [HeadProofView(seq=p.seq, height=p.height, count=p.count, head=p.head, index=p.index, size=p.size,
                                 path=list(p.path)) for p in api.store.get_anchor_proofs(passport_id)]
        return json_response(AccessLogView(passport_id=passport_id, entries=views, head_seq=head_seq,
                                           head_hash=head_hash, service=getattr(api.node, "passport_service", ""),
                                           anchors=anchors))

    return router


def _checked_read(body: ReadPassportBody) -> str:
    """A restricted read's tier and request checked; its presentation as JSON text within its limit."""
    try:
        required_credential(body.tier)
        check_reader_request(body.tier, body.request)
    except PassportError as exc:
        raise _refused(exc) from None
    presentation = body.presentation
    if not isinstance(presentation, str):
        presentation = msgspec.json.encode(presentation).decode()
    if len(presentation) > MAX_PRESENTATION_BYTES:
        raise invalid_body(f"presentation: exceeds {MAX_PRESENTATION_BYTES} bytes")
    return presentation


def _put(api: PassportApi, passport_id: str, body: PutPassportBody) -> PassportStoredView:
    """Authorise and store one document (in a worker thread: validation takes milliseconds)."""
    with api.writing:
        return _put_locked(api, passport_id, body)


def _put_locked(api: PassportApi, passport_id: str, body: PutPassportBody) -> PassportStoredView:
    """_put, under the write lock."""
    _, base = api.latest(passport_id)
    if body.base != base:
        raise ApiError(409, "passport/version", f"base: the update was made over {body.base} stored tier "
                                                f"versions, the node holds {base}; sign it again over {base}")
    try:
        on_chain = api.authorise_put(passport_id, body)
    except ValueError:  # an operator string the DID parser cannot read (undecodable base58)
        raise invalid_body(f"operator: expected a did:city DID, got {body.operator[:200]!r}") from None
    try:
        check_document(body.document)  # before anything is recorded, the operator's claim included
        if not on_chain:
            # Until the chain names the responsible operator, the first one to store the passport is it.
            first = api.store.claim_operator(passport_id, body.operator)
            if first != body.operator:
                raise _forbidden("operator", f"{passport_id} was first stored by {first}, who alone updates it "
                                             "until it is registered on chain")
        written = api.store.put_document(body.document)
    except PassportError as exc:
        raise _refused(exc) from None
    latest, base = api.latest(passport_id)
    return PassportStoredView(passport_id=passport_id, base=base, latest=latest,
                              written=[TierHashView(tier=w.tier, version=w.version, hash=w.hash_hex)
                                       for w in written])


def _export(api: PassportApi, passport_id: str, tier: Any, reader: str) -> PassportDocumentView:
    """The document up to `tier`; a restricted tier only after the caller verified the reader (logged)."""
    try:
        # proof_ok: the read route calls this only once the node's verifier accepted the presentation.
        document = api.store.export(passport_id, tier, proof_ok=tier != "public", reader_did=reader,
                                    height=api.node.store.last_height(), time_s=int(time.time()))
        if tier != "public":  # performance.dynamic is legitimate (Annex XIII point 4): the newest committed report
            document = overlay_dynamic(document, ReportBook(api.store).latest_committed(passport_id))
    except PassportError as exc:
        raise _refused(exc) from None
    latest, base = api.latest(passport_id)
    return PassportDocumentView(passport_id=passport_id, tier=tier, document=document, latest=latest, base=base)
