"""Owners' vaults over REST: the node's vault service (offchain/vaults/service.py, hosted by node/telemetry.py).

    POST /vaults/read           {reader: owner account, data_set, start_s, end_s, height, signatures}
                                the owner's sealed records with the wraps sealed to its vault key
    POST /vaults/consumer-read  {reader: consumer DID, data_set, purpose, start_s, end_s, height, signatures}
                                under a consent valid now: the records of its period sealed for it; logged
    POST /vaults/log            {reader: owner account, after_seq, height, signatures}  the owner's access log
    POST /vaults/erase          {reader: owner account, data_set ('' = the whole vault), height, signatures}
                                crypto-shredding; logged
    POST /vaults/proof          {reader: owner account, record_id, height, signatures}
                                one of the owner's records: the root its gateway anchored for (gateway DID,
                                interval), that root's count and height, and the record's inclusion proof
                                (for a fleet: the shard's root and its path too); anyone checks it with
                                sdk.vaults.verify_inclusion. 404 until anchored or once pruned; 403 for a
                                record of another owner

Every body is signed (sdk.vaults.sign_request) over offchain/vaults/service.compute_request_bytes:
the chain id, the action the route names, and a height at most MAX_REQUEST_AGE blocks old. A node
without the vault service (telemetry not enabled) answers 503.
"""

from __future__ import annotations

import re
import msgspec
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...core.encoding import encode
from ...core.keys import MAX_SIGNER_KEYS, PublicKey, scheme_from_name
from ...offchain.vaults import VaultError
from ...offchain.vaults.accesslog import MAX_LOG_PAGE, SignedEntry
from ...offchain.vaults.service import (
    ACTION_CONSUMER_READ,
    ACTION_ERASE,
    ACTION_LOG,
    ACTION_PROOF,
    ACTION_READ,
    Proven,
    Released,
    RequestSignature,
    VaultRequest,
)
from ...offchain.telemetry.anchor import FleetProof, InclusionProof
from ...wire.vaults import (
    VAULT_BODY_TYPES,
    VAULT_VIEW_TYPES,
    SealedRecordView,
    VaultErasureView,
    VaultLogEntryView,
    VaultLogView,
    VaultProofView,
    ProofPathView,
    ShardRootView,
    VaultRecordsView,
    VaultRequestBody,
    WrapView,
)
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body
from ..protocols import NodeLike
from .common import MAX_INT64, add_schemas

MAX_VAULT_BODY_BYTES = 64 * 1024  # a request is a few ids, numbers and at most MAX_SIGNER_KEYS signatures
MAX_FIELD_CHARS = 256  # the longest reader, data set or purpose a body may name
_TAGS = ["vaults"]
_ID_RE = re.compile(r"[A-Za-z0-9._:-]*")  # accounts, DIDs, data set ids and purpose codes: no spaces, no controls
_HEX_RE = re.compile(r"(?:[0-9a-f]{2}){1,256}")
_RECORD_ID_RE = re.compile(r"[0-9a-f]{64}")
_DECODER = msgspec.json.Decoder(VaultRequestBody)
_STATUS = {"invalid": 400, "malformed": 400, "forbidden": 403, "no_consent": 403, "not_found": 404,
           "no_key": 404, "wrong_vault": 400, "unavailable": 503}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(view: str) -> dict:
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": _ref(view)}}}}
    for status in (400, 403, 404, 413, 503):
        out[status] = {"description": "Refused, the field named in error.field",
                       "content": {"application/json": {"schema": _ref("ErrorBody")}}}
    return out


_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref("VaultRequestBody")}}}}


def _refused(exc: VaultError) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 400), f"vault/{exc.code}", str(exc), field=exc.field)


def _check_body(body: VaultRequestBody) -> None:
    """Raise a 400 naming the field unless every id is short and plain and every number in range."""
    for name in ("reader", "data_set", "purpose"):
        value = getattr(body, name)
        if len(value) > MAX_FIELD_CHARS or not _ID_RE.fullmatch(value):
            raise invalid_body(f"{name}: expected at most {MAX_FIELD_CHARS} of A-Z a-z 0-9 . _ : -, got {value[:80]!r}")
    for name in ("start_s", "end_s", "after_seq", "height"):
        value = getattr(body, name)
        if not 0 <= value <= MAX_INT64:
            raise invalid_body(f"{name}: expected 0 to {MAX_INT64}, got {value}")
    if body.record_id and not _RECORD_ID_RE.fullmatch(body.record_id):
        raise invalid_body(f"record_id: expected 64 lower-case hex digits, got {body.record_id[:80]!r}")
    if not 1 <= len(body.signatures) <= MAX_SIGNER_KEYS:
        raise invalid_body(f"signatures: expected 1 to {MAX_SIGNER_KEYS}, got {len(body.signatures)}")


def _signatures(body: VaultRequestBody) -> list[RequestSignature]:
    """The body's signatures; a 400 naming the first malformed one."""
    out = []
    for index, entry in enumerate(body.signatures):
        try:
            if not _HEX_RE.fullmatch(entry.key) or not _HEX_RE.fullmatch(entry.signature):
                raise ValueError(entry.key)
            out.append(RequestSignature(PublicKey(scheme_from_name(entry.scheme), bytes.fromhex(entry.key)),
                                        bytes.fromhex(entry.signature)))
        except (ValueError, KeyError, TypeError):
            raise invalid_body(f"signatures[{index}]: expected a scheme name ('ed25519' or 'p256') and hex key "
                               "and signature") from None
    return out


def _request(action: str, body: VaultRequestBody) -> VaultRequest:
    return VaultRequest(action, body.reader, body.data_set, body.purpose, body.start_s, body.end_s, body.after_seq,
                        body.height, bytes.fromhex(body.record_id))


def render_entry(signed: SignedEntry) -> VaultLogEntryView:
    """A log entry as the API answers it."""
    e = signed.entry
    return VaultLogEntryView(seq=e.seq, owner=e.owner, kind=e.kind, reader=e.reader, purpose=e.purpose,
                             consent_id=e.consent_id, data_set=e.data_set, record_ids=[r.hex() for r in e.record_ids],
                             keys_destroyed=e.keys_destroyed, height=e.height, time_s=e.time_s,
                             previous=e.previous.hex(), hash=signed.hash.hex(), signature=signed.signature.hex())


def render_released(released: Released) -> VaultRecordsView:
    """What a read released, as the API answers it."""
    records = [SealedRecordView(record_id=record_id.hex(), record=encode(stored).hex(),
                                wrap=WrapView(recipient=wrap.recipient.hex(), enc=wrap.enc.hex(), ct=wrap.ct.hex()))
               for record_id, stored, wrap in released.records]
    return VaultRecordsView(owner=released.owner, data_set=released.data_set, records=records,
                            consent_id=None if released.consent is None else released.consent.id,
                            log_entry=None if released.entry is None else render_entry(released.entry))


def _path(proof: InclusionProof) -> ProofPathView:
    return ProofPathView(index=proof.index, size=proof.size, path=[step.hex() for step in proof.path])


def render_proven(proven: Proven) -> VaultProofView:
    """A record's inclusion proof and the anchor it checks against, as the API answers it."""
    proof, anchored = proven.proof, proven.anchored
    record = proof.record if isinstance(proof, FleetProof) else proof
    shard = fleet = None
    if isinstance(proof, FleetProof):
        s = proof.shard
        shard = ShardRootView(shard=s.shard, interval=s.interval, root=s.root.hex(), count=s.count)
        fleet = _path(proof.fleet)
    return VaultProofView(owner=proven.owner, record_id=proven.record_id.hex(),
                          record=proven.record.hex(), gateway_did=proven.gateway_did,
                          interval=proven.interval, root=anchored.root.hex(), count=anchored.count,
                          height=anchored.height, proof=_path(record), shard=shard, fleet_proof=fleet)


def include_vaults(app: FastAPI, node: NodeLike) -> None:
    """Add the vault routes to an app, and their body schemas to its OpenAPI document."""
    app.include_router(vault_router(node))
    add_schemas(app, VAULT_BODY_TYPES + VAULT_VIEW_TYPES)


def vault_router(node: NodeLike) -> APIRouter:
    """The vault routes."""
    router = APIRouter(tags=_TAGS)

    async def call(request: Request, action: str, run) -> Response:
        service = getattr(node, "vaults", None)
        body: VaultRequestBody = decode_json(await read_body(request, MAX_VAULT_BODY_BYTES), _DECODER)
        _check_body(body)
        signatures = _signatures(body)
        if service is None:
            raise ApiError(503, "vault/unavailable", "vaults: this node runs no vault service ([telemetry] enabled = false)")
        try:
            return json_response(await run_in_threadpool(run, service, _request(action, body), signatures))
        except VaultError as exc:
            raise _refused(exc) from None

    @router.post("/vaults/read", summary="Owner: my sealed records of a data set in a window",
                 openapi_extra=_BODY_DOC, responses=_doc("VaultRecordsView"))
    async def read(request: Request) -> Response:
        return await call(request, ACTION_READ, lambda s, r, sig: render_released(s.read_owner(r, sig)))

    @router.post("/vaults/consumer-read", summary="Consumer: records released to me by a consent valid now (logged)",
                 openapi_extra=_BODY_DOC, responses=_doc("VaultRecordsView"))
    async def consumer_read(request: Request) -> Response:
        return await call(request, ACTION_CONSUMER_READ, lambda s, r, sig: render_released(s.read_consumer(r, sig)))

    @router.post("/vaults/log", summary="Owner: my access log (every read by others, every erasure)",
                 openapi_extra=_BODY_DOC, responses=_doc("VaultLogView"))
    async def log(request: Request) -> Response:
        def run(service, req, sig) -> VaultLogView:
            entries = service.read_log(req, sig, MAX_LOG_PAGE)
            more = len(entries) == MAX_LOG_PAGE
            return VaultLogView(owner=req.reader, service=service.service, entries=[render_entry(e) for e in entries],
                                next_seq=entries[-1].entry.seq if more else None)
        return await call(request, ACTION_LOG, run)

    @router.post("/vaults/erase", summary="Owner: crypto-shred a data set, or ('' ) the whole vault (logged)",
                 openapi_extra=_BODY_DOC, responses=_doc("VaultErasureView"))
    async def erase(request: Request) -> Response:
        def run(service, req, sig) -> VaultErasureView:
            done = service.erase(req, sig)
            return VaultErasureView(owner=done.owner, data_set=done.data_set, keys_destroyed=done.keys_destroyed,
                                    log_entry=render_entry(done.entry))
        return await call(request, ACTION_ERASE, run)

    @router.post("/vaults/proof", summary="Owner: my record's inclusion proof against the root anchored on the ledger",
                 openapi_extra=_BODY_DOC, responses=_doc("VaultProofView"))
    async def proof(request: Request) -> Response:
        proofs = getattr(node, "telemetry", None)
        return await call(request, ACTION_PROOF, lambda s, r, sig: render_proven(s.prove_owner(r, sig, proofs)))

    return router
