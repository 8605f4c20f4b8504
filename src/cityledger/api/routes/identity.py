"""Identity over REST: DID resolution, anchored AnonCreds objects, devices, the verifier, hosted issuers.

    GET  /dids/{did}?height=                   W3C DID resolution result (404 if never created)
    GET  /schemas/{id}  /cred-defs/{id}  /rev-regs/{id}  /status-lists/{id}?timestamp=   (?height=)
    GET  /trusted-issuers?credential_type=&did= accreditations (the trusted-issuer registry)
    GET  /devices/{did}    POST /devices/{did}/verify {payload, signature}
    POST /verifier/requests {credential_type, reveal, predicates}   -> presentation request (pins the height,
                                                                       sealed with the node's verifier key)
    POST /verifier/verify   {request, presentation}                -> verdict (the seal checked, no state kept)
    GET  /issuers   GET /issuers/{did}                              issuers hosted by this node
    POST /issuers/{did}/publish     {credential_type}               operator: start publishing a type (202: its
                                                                       state; GET /issuers/{did} follows it)
    POST /issuers/{did}/offers      {credential_type, values, reference}  operator: pre-authorised offer
    POST /issuers/{did}/credentials <credential-request message>    holder: redeem an offer, once
    POST /issuers/{did}/revocations {references}                    operator: revoke
    GET  /issuers/{did}/tails/{hash}                                tails file bytes

Operator endpoints take `Authorization: Bearer <token>` (the office's token file). The messages are
those of docs/IDENTITY_PROTOCOL.md; the services are offchain/identity's, this module only maps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...modules.devices.queries import query_device
from ...modules.identity.queries import (
    query_cred_def,
    query_issuers,
    query_rev_reg_def,
    query_schema,
    query_status_list,
    resolve_did,
)
from ...modules.identity.did import is_did
from ...modules.identity.presentations import MAX_PRESENTATION_BYTES
from ...offchain.identity.issuer import MAX_REFERENCES, REQUEST_TYPE, IssuanceError, OfficeUnavailable
from ...offchain.identity.ledger import LedgerError, NodeLedger
from ...offchain.identity.tails import TAILS_HASH_RE
from ...offchain.identity.verifier import Verifier, load_verifier_key
from ...wire.identity import (
    IDENTITY_BODY_TYPES,
    IDENTITY_VIEW_TYPES,
    CredentialRequestBody,
    DeviceMessageBody,
    OfferBody,
    PresentationRequestBody,
    PublicationView,
    PublishBody,
    RevokeBody,
    VerifyBody,
)
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body, invalid_param, not_found
from ..protocols import NodeLike
from .common import MAX_INT64, add_schemas

MAX_IDENTITY_BODY_BYTES = 1024 * 1024
# AnonCreds objects nest about 6 deep; anything far deeper is hostile, and Python's own JSON code
# (and msgspec past ~1,000) would run out of stack on it.
MAX_IDENTITY_JSON_DEPTH = 32
VERIFIER_KEY_FILE = "verifier.key"
_TAGS = ["identity"]
_ERRORS = {400: "Invalid input, named in error.field", 401: "Missing or wrong operator token",
           404: "Not found", 503: "The office's state cannot be opened (the node's log says why)"}


_DECODERS = {kind: msgspec.json.Decoder(kind) for kind in IDENTITY_BODY_TYPES}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(*statuses: int, content: str = "application/json") -> dict:
    out: dict = {200: {"description": "OK", "content": {content: {}}}}
    for status in statuses:
        out[status] = {"description": _ERRORS[status], "content": {"application/json": {"schema": _ref("ErrorBody")}}}
    return out


def _accepted_doc(kind: type, *statuses: int) -> dict:
    """202 Accepted answering the wire view `kind`, and the error answers."""
    out = _doc(*statuses)
    del out[200]
    out[202] = {"description": "Accepted", "content": {"application/json": {"schema": _ref(kind.__name__)}}}
    return out


def _body_doc(kind: type) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(kind.__name__)}}}}


async def _decode(request: Request, kind: type) -> Any:
    """A request body as `kind`; hostile JSON (invalid UTF-8, deep nesting) is a 400 naming the body.

    The generic decoder lets UnicodeDecodeError and RecursionError through; they are answered here
    so that these routes never answer 500 whatever the body.
    """
    data = await read_body(request, MAX_IDENTITY_BODY_BYTES)
    try:
        body = decode_json(data, _DECODERS[kind])
    except UnicodeDecodeError as exc:
        raise invalid_body(f"body: not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise invalid_body(f"body: nested deeper than {MAX_IDENTITY_JSON_DEPTH} levels") from None
    for name in kind.__struct_fields__:
        if compute_depth(getattr(body, name)) > MAX_IDENTITY_JSON_DEPTH:
            raise invalid_body(f"{name}: nested deeper than {MAX_IDENTITY_JSON_DEPTH} levels")
    return body


def compute_depth(value: Any) -> int:
    """How deep lists and objects nest in a decoded JSON value (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        elif isinstance(item, msgspec.Struct):
            children = [getattr(item, name) for name in item.__struct_fields__]
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_IDENTITY_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _looks_like_did(text: str) -> bool:
    """is_did, and False (not an exception) for whitespace, control characters or undecodable base58."""
    if not text.isprintable() or text.strip() != text:
        return False
    try:
        return is_did(text)
    except ValueError:
        return False


def _answer(function: Callable[[], Any]) -> Any:
    """Run a read; LookupError becomes 404 and ValueError 400, both naming the field."""
    try:
        return function()
    except LookupError as exc:
        raise not_found(str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise invalid_param(str(exc)) from None


class IdentityApi:
    """What the identity routes read and call: the node's state at a height, its verifier, its issuers."""

    def __init__(self, node: NodeLike) -> None:
        self.node = node
        self.ledger = NodeLedger(node)
        home = getattr(getattr(node, "config", None), "home", None)
        # The key is node-local and kept across restarts, so requests made before one still verify.
        key = load_verifier_key(Path(home) / VERIFIER_KEY_FILE) if home is not None else None
        self.verifier = Verifier(self.ledger, key=key)
        self.issuers: dict[str, Any] = dict(node.issuers)

    def state(self, height: int):
        """The committed state at `height` (0: the latest); raise ApiError for heights it does not keep."""
        store = self.node.store
        last = store.last_height()
        if height < 0:
            raise invalid_param(f"height: expected a non-negative integer, got {height}")
        height = height or last
        if height > last or store.height_info(height) is None:
            raise not_found(f"height: {height} is not a committed height (latest is {last})")
        oldest = getattr(store, "oldest_retained_height", None)
        if oldest is not None and height < oldest():
            raise not_found(f"height: {height} is older than the retained window (oldest {oldest()})")
        return self.ledger.state_at(height)

    def module_query(self, module: str, name: str) -> Callable[[Any, dict[str, str]], Any]:
        """A query of the node's own module set, as node/ wired it (devices' verify reads identity)."""
        for found in self.node.app.modules:
            if found.name == module and name in found.queries:
                return found.queries[name]
        raise LookupError(f"path: this node answers no query /{module}/{name}")

    def issuer(self, did: str):
        """A hosted issuer by DID; 404 if this node does not host it."""
        issuer = self.issuers.get(did)
        if issuer is None:
            raise not_found(f"did: this node hosts no issuer {did[:80]!r} (see GET /issuers)")
        return issuer

    def operator(self, did: str, request: Request):
        """A hosted issuer whose operator token the request carries; 401 otherwise."""
        issuer = self.issuer(did)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not issuer.is_operator(token.strip()):
            raise ApiError(401, "api/unauthorized", "authorization: expected 'Bearer <token>' with the operator "
                                                    f"token of {did}")
        return issuer


def include_identity(app: FastAPI, node: NodeLike) -> None:
    """Add the identity routes to an app, and their body schemas to its OpenAPI document."""
    api = IdentityApi(node)
    app.state.identity = api
    app.include_router(ledger_router(api))
    app.include_router(verifier_router(api))
    app.include_router(issuer_router(api))
    add_schemas(app, IDENTITY_BODY_TYPES + IDENTITY_VIEW_TYPES)


def ledger_router(api: IdentityApi) -> APIRouter:
    """DIDs, anchored AnonCreds objects, the trusted-issuer registry and devices, at a height."""
    router = APIRouter(tags=_TAGS)
    Height = Query(0, ge=0, le=MAX_INT64, description="Read the state of this height (0: the latest)")

    @router.get("/dids/{did}", summary="Resolve a did:city DID (W3C DID resolution result)", responses=_doc(400, 404))
    def get_did(did: str, height: int = Height) -> Response:
        if not _looks_like_did(did):
            raise invalid_param(f"did: expected a did:city DID, got {did[:200]!r}")
        state = api.state(height)
        result = _answer(lambda: resolve_did(state, did))
        if result["didDocument"] is None:
            raise not_found(f"did: no DID {did} at height {height or api.node.store.last_height()}")
        return json_response(result)

    def anchored(path: str, summary: str, query: Callable) -> None:
        @router.get(path, summary=summary, responses=_doc(400, 404), name=query.__name__.replace("query", "get"))
        def get_anchored(object_id: str, height: int = Height,
                         timestamp: int | None = Query(None, ge=0, le=MAX_INT64)) -> Response:
            args = {"id": object_id} if timestamp is None else {"id": object_id, "timestamp": str(timestamp)}
            state = api.state(height)
            return json_response(_answer(lambda: query(state, args)))

    anchored("/schemas/{object_id:path}", "An anchored AnonCreds schema", query_schema)
    anchored("/cred-defs/{object_id:path}", "An anchored credential definition", query_cred_def)
    anchored("/rev-regs/{object_id:path}", "An anchored revocation registry definition", query_rev_reg_def)
    anchored("/status-lists/{object_id:path}", "A registry's latest status list (or the one at ?timestamp=)",
             query_status_list)

    @router.get("/trusted-issuers", summary="Accredited issuers (the trusted-issuer registry)", responses=_doc(400))
    def trusted_issuers(credential_type: str = "", did: str = "") -> Response:
        args = {k: v for k, v in (("credential_type", credential_type), ("did", did)) if v}
        return json_response(_answer(lambda: query_issuers(api.node.store, args)))

    @router.get("/devices/{did}", summary="A registered device", responses=_doc(404))
    def get_device(did: str, height: int = Height) -> Response:
        state = api.state(height)
        return json_response(_answer(lambda: query_device(state, {"did": did})))

    @router.post("/devices/{did}/verify", summary="Check a device-signed message against the registry",
                 openapi_extra=_body_doc(DeviceMessageBody), responses=_doc(400))
    async def verify_device_message(did: str, request: Request) -> Response:
        body: DeviceMessageBody = await _decode(request, DeviceMessageBody)
        args = {"did": did, "payload": body.payload, "signature": body.signature}
        return json_response(_answer(lambda: api.module_query("devices", "verify")(api.node.store, args)))

    return router


def verifier_router(api: IdentityApi) -> APIRouter:
    """The node's verifier: presentation requests pinned to a height, and verdicts."""
    router = APIRouter(tags=_TAGS)

    @router.post("/verifier/requests", summary="Create a presentation request (pins the current height)",
                 openapi_extra=_body_doc(PresentationRequestBody), responses=_doc(400))
    async def create_request(request: Request) -> Response:
        body: PresentationRequestBody = await _decode(request, PresentationRequestBody)
        predicates = [(p.name, p.p_type, p.p_value) for p in body.predicates]
        made = _answer(lambda: api.verifier.request(body.name, body.credential_type, body.reveal, predicates,
                                                    body.non_revoked))
        return json_response(made)

    @router.post("/verifier/verify", summary="Verify a presentation against the ledger at the request's height",
                 openapi_extra=_body_doc(VerifyBody), responses=_doc(400))
    async def verify(request: Request) -> Response:
        body: VerifyBody = await _decode(request, VerifyBody)
        presentation = body.presentation
        if not isinstance(presentation, str):
            presentation = msgspec.json.encode(presentation).decode()
        if len(presentation) > MAX_PRESENTATION_BYTES:
            raise invalid_param(f"presentation: exceeds {MAX_PRESENTATION_BYTES} bytes")
        verdict = await run_in_threadpool(api.verifier.verify, body.request, presentation)
        return json_response(verdict)

    return router


def issuer_router(api: IdentityApi) -> APIRouter:
    """Issuers hosted beside this node: set-up, pre-authorised offers, redemption, revocation, tails."""
    router = APIRouter(tags=_TAGS)

    @router.get("/issuers", summary="Issuers hosted by this node", responses=_doc(503))
    def list_issuers() -> Response:
        return json_response({"issuers": [_issuing(issuer.info) for _, issuer in sorted(api.issuers.items())]})

    @router.get("/issuers/{did}", summary="A hosted issuer: its credential types and anchored ids",
                responses=_doc(404, 503))
    def get_issuer(did: str) -> Response:
        return json_response(_issuing(api.issuer(did).info))

    @router.post("/issuers/{did}/publish", status_code=202, openapi_extra=_body_doc(PublishBody),
                 summary="Operator: start publishing a credential type in the background (once); its state",
                 responses=_accepted_doc(PublicationView, 400, 401, 404, 503))
    async def publish(did: str, request: Request) -> Response:
        issuer = api.operator(did, request)
        body: PublishBody = await _decode(request, PublishBody)
        state = await run_in_threadpool(_issuing, lambda: issuer.publish(body.credential_type))
        return json_response(msgspec.convert(state, PublicationView), status=202)

    @router.post("/issuers/{did}/offers", summary="Operator: a pre-authorised credential offer",
                 openapi_extra=_body_doc(OfferBody), responses=_doc(400, 401, 404, 503))
    async def offer(did: str, request: Request) -> Response:
        issuer = api.operator(did, request)
        body: OfferBody = await _decode(request, OfferBody)
        made = await run_in_threadpool(_issuing, lambda: issuer.offer(body.credential_type, body.values,
                                                                         body.reference))
        return json_response(made)

    @router.post("/issuers/{did}/credentials", summary="Holder: redeem a pre-authorised offer with a request",
                 openapi_extra=_body_doc(CredentialRequestBody), responses=_doc(400, 404, 503))
    async def redeem(did: str, request: Request) -> Response:
        issuer = api.issuer(did)
        body: CredentialRequestBody = await _decode(request, CredentialRequestBody)
        if body.type != REQUEST_TYPE:
            raise invalid_body(f"type: expected {REQUEST_TYPE!r}")
        message = {"type": body.type, "thread": body.thread, "request": body.request}
        return json_response(await run_in_threadpool(_issuing, lambda: issuer.redeem(message)))

    @router.post("/issuers/{did}/revocations", summary="Operator: revoke credentials by the office's references",
                 openapi_extra=_body_doc(RevokeBody), responses=_doc(400, 401, 404, 503))
    async def revoke(did: str, request: Request) -> Response:
        issuer = api.operator(did, request)
        body: RevokeBody = await _decode(request, RevokeBody)
        if not 1 <= len(body.references) <= MAX_REFERENCES:
            raise invalid_body(f"references: expected 1 to {MAX_REFERENCES}, got {len(body.references)}")
        outcome = await run_in_threadpool(_issuing, lambda: issuer.revoke(body.references))
        return json_response({"revoked": len(body.references), "height": outcome.height})

    @router.get("/issuers/{did}/tails/{tails_hash}", summary="A tails file (checked by holders against the ledger)",
                responses=_doc(400, 404, content="application/octet-stream"))
    def tails(did: str, tails_hash: str) -> Response:
        if not TAILS_HASH_RE.fullmatch(tails_hash):
            raise invalid_param(f"tails_hash: expected a base58 SHA-256 hash (32 to 44 characters), "
                                f"got {len(tails_hash)} characters")
        issuer = api.issuer(did)
        data = _answer(lambda: issuer.tails(tails_hash))
        return Response(data, media_type="application/octet-stream")

    return router


def _issuing(function: Callable[[], Any]) -> Any:
    """Run an issuer call: a refusal is 400 issuer/refused, a refused tx keeps its code, a broken office 503."""
    try:
        return function()
    except IssuanceError as exc:
        raise ApiError(400, "issuer/refused", str(exc)) from None
    except LedgerError as exc:
        raise ApiError(400, f"{exc.codespace}/{exc.code}", exc.log, codespace=exc.codespace,
                       abci_code=exc.code) from None
    except OfficeUnavailable as exc:  # its message names the office, never its folder
        raise ApiError(503, "issuer/unavailable", str(exc)) from None

