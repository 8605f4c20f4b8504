"""The ledger's own REST endpoints: txs, blocks, accounts, state, queries, status. Each route decodes its input, calls NodeService off the event loop, encodes.

Routes that only read are plain `def`, which FastAPI runs in its worker threads; routes that read a
body or wait are `async def` and hand blocking calls to run_in_threadpool.
"""

from __future__ import annotations

import msgspec
from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..codec import (
    MAX_BATCH_BODY_BYTES,
    MAX_TX_BODY_BYTES,
    decode_json,
    decode_tx_text,
    json_response,
    read_body,
)
from ..errors import ApiError, invalid_body, invalid_param
from ..metrics import CONTENT_TYPE
from ..schemas import SubmitBatchBody, SubmitTxBody, SubmitView
from ..service import NodeService
from ..waiting import BlockWatch, wait_for_commit
from .common import MAX_INT64

MAX_BATCH_TXS = 10_000
DEFAULT_WAIT_S = 30.0
MAX_WAIT_S = 600.0

_SUBMIT = msgspec.json.Decoder(SubmitTxBody)
_BATCH = msgspec.json.Decoder(SubmitBatchBody)
_ERRORS = {400: "Invalid input, named in error.field", 404: "Not found", 409: "Nonce or duplicate conflict",
           413: "Too large", 429: "Sender quota exceeded", 503: "Mempool full"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def doc(ok: str, *statuses: int) -> dict:
    """OpenAPI `responses` for a route answering the `ok` schema, or an ErrorBody."""
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": _ref(ok)}}}}
    for status in statuses:
        out[status] = {"description": _ERRORS[status], "content": {"application/json": {"schema": _ref("ErrorBody")}}}
    return out


def body_doc(name: str) -> dict:
    """OpenAPI request body of a route that decodes its body with msgspec."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(name)}}}}


def _tx_id(text: str) -> bytes:
    try:
        tx_id = bytes.fromhex(text)
    except ValueError:
        tx_id = b""
    if len(tx_id) != 32:
        raise invalid_param(f"tx_id: expected 64 hex digits, got {text!r}")
    return tx_id


def tx_router(service: NodeService, watch: BlockWatch) -> APIRouter:
    """POST /txs, POST /txs/batch, GET /txs/{tx_id}, GET /txs/{tx_id}/wait."""
    router = APIRouter(tags=["transactions"])
    read_height = service.node.store.last_height

    async def wait(tx_id: bytes, timeout_s: float) -> bool:
        return await wait_for_commit(service.is_pending, read_height, watch, tx_id, timeout_s)

    @router.post("/txs", summary="Submit one signed tx", openapi_extra=body_doc("SubmitTxBody"),
                 responses=doc("SubmitView", 400, 409, 413, 429, 503))
    async def submit_tx(request: Request, wait_commit: bool = Query(False, alias="wait"),
                        timeout_s: float = Query(DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S)) -> Response:
        body: SubmitTxBody = decode_json(await read_body(request, MAX_TX_BODY_BYTES), _SUBMIT)
        try:
            raw = decode_tx_text(body.tx, body.encoding)
        except ValueError as exc:
            raise invalid_body(f"tx: {exc}") from None
        service.metrics.count_received(1)
        check = await run_in_threadpool(service.submit, raw)
        if not wait_commit:
            return json_response(SubmitView(tx_id=check.tx_id, status="pending", check=check))
        tx_id = bytes.fromhex(check.tx_id)
        done = await wait(tx_id, timeout_s)
        status = await run_in_threadpool(service.tx_status, tx_id)
        return json_response(SubmitView(tx_id=status.tx_id, status=status.status, height=status.height,
                                        index=status.index, result=status.result, check=check,
                                        timed_out=not done))

    @router.post("/txs/batch", summary="Submit up to 10,000 signed txs", openapi_extra=body_doc("SubmitBatchBody"),
                 responses=doc("BatchView", 400, 413))
    async def submit_batch(request: Request) -> Response:
        body: SubmitBatchBody = decode_json(await read_body(request, MAX_BATCH_BODY_BYTES), _BATCH)
        if len(body.txs) > MAX_BATCH_TXS:
            raise ApiError(413, "api/too_many_txs",
                           f"txs: expected at most {MAX_BATCH_TXS} txs in a batch, got {len(body.txs)}")
        raws, failures = [], {}
        for position, text in enumerate(body.txs):
            try:
                raws.append(decode_tx_text(text, body.encoding))
            except ValueError as exc:
                failures[position] = f"txs[{position}]: {exc}"
        service.metrics.count_received(len(body.txs))
        view = await run_in_threadpool(service.submit_batch, raws, failures)
        return json_response(view)

    @router.get("/txs/{tx_id}", summary="A tx's status and result", responses=doc("TxStatusView", 400))
    def get_tx(tx_id: str) -> Response:
        return json_response(service.tx_status(_tx_id(tx_id), with_tx=True))

    @router.get("/txs/{tx_id}/wait", summary="Wait until a tx is committed", responses=doc("TxStatusView", 400))
    async def wait_tx(tx_id: str, timeout_s: float = Query(DEFAULT_WAIT_S, gt=0, le=MAX_WAIT_S)) -> Response:
        raw_id = _tx_id(tx_id)
        await wait(raw_id, timeout_s)
        return json_response(await run_in_threadpool(service.tx_status, raw_id, True))

    return router


def chain_router(service: NodeService) -> APIRouter:
    """Blocks, accounts, state with proofs and module queries."""
    router = APIRouter(tags=["chain"])

    @router.get("/blocks/latest", summary="The latest committed block", responses=doc("BlockView", 404))
    def latest_block(txs: bool = False) -> Response:
        return json_response(service.block(None, include_txs=txs))

    @router.get("/blocks/{height}", summary="A committed block", responses=doc("BlockView", 400, 404))
    def get_block(height: int = Path(ge=0, le=MAX_INT64), txs: bool = False) -> Response:
        return json_response(service.block(height, include_txs=txs))

    @router.get("/accounts/{address}", summary="Balance and nonce of an account", responses=doc("AccountView", 400))
    def get_account(address: str) -> Response:
        return json_response(service.account(address))

    @router.get("/state/{key_hex}", summary="A state value, with a proof against the app hash",
                responses=doc("StateView", 400, 404))
    def get_state(key_hex: str, height: int = Query(0, ge=0, le=MAX_INT64), prove: bool = False) -> Response:
        return json_response(service.state(key_hex, height, prove))

    @router.get("/query/{module}/{name}", summary="A module query; arguments as query parameters",
                responses=doc("QueryView", 400, 404))
    def module_query(module: str, name: str, request: Request) -> Response:
        return json_response(service.query(module, name, dict(request.query_params)))

    return router


def node_router(service: NodeService) -> APIRouter:
    """Status, health and metrics."""
    router = APIRouter(tags=["node"])

    @router.get("/status", summary="Chain id, height, app hash, mempool, engine", responses=doc("StatusView"))
    def status() -> Response:
        return json_response(service.status())

    @router.get("/health", summary="Liveness", responses=doc("HealthView"))
    def health() -> Response:
        return json_response(service.health())

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return router
