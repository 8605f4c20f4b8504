"""Payments over REST: channels, escrows, device policies and counterparties, and a voucher pre-check.

    GET  /payments/channels/{id}?height=          a channel: parties, voucher key, deposit, redeemed, status
    GET  /payments/escrows/{id}?height=           an escrow until released or refunded
    GET  /payments/policies/{device}?height=      a device's spending policy, and what it spent that day
    GET  /payments/counterparties/{address}?height=  the counterparty kind an account declared
    GET  /payments/locked?height=                 credits locked in escrows and channels
    POST /payments/vouchers/check {channel_id, amount, nonce, signature}
                                                  would the chain redeem this voucher now, and for how much

Payments txs themselves (policies, escrow, channels, redeems) are submitted signed, like every tx,
to POST /txs (the SDK's cityledger.sdk.payments builds them). The voucher check runs the chain's
own function (modules/payments/handlers.check_redeemable) against the latest committed state, so a
payee can refuse a voucher the chain would refuse before it delivers anything.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import Response

from ...core.errors import TxError
from ...core.types import address_to_str
from ...modules.payments.handlers import MAX_ID, check_redeemable, get_channel
from ...wire.payments import PAYMENTS_BODY_TYPES, PAYMENTS_VIEW_TYPES, VoucherCheckBody, VoucherCheckView
from ..codec import decode_json, json_response, read_body
from ..errors import ApiError, invalid_body, invalid_param, not_found
from .common import MAX_INT64, add_schemas

MAX_PAYMENTS_BODY_BYTES = 4 * 1024  # a voucher check is four fields
MAX_SIGNATURE_HEX = 2 * 128  # the longest signature of any scheme, hex
_TAGS = ["payments"]
_VOUCHER_CHECK = msgspec.json.Decoder(VoucherCheckBody)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _doc(view: str, *statuses: int) -> dict:
    described = {400: "Invalid input, named in error.field", 404: "Not found",
                 409: "The chain would refuse this voucher (error.code names why)"}
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": _ref(view)}}}}
    for status in statuses:
        out[status] = {"description": described[status],
                       "content": {"application/json": {"schema": _ref("ErrorBody")}}}
    return out


def _id(value: int, name: str) -> str:
    if not 1 <= value <= MAX_ID:
        raise invalid_param(f"{name}: expected an id 1 to {MAX_ID}, got {value}")
    return str(value)


def include_payments(app: FastAPI) -> None:
    """Add the payments routes (they read through the identity routes' state access) and their schemas."""
    app.include_router(payments_router(app))
    add_schemas(app, PAYMENTS_BODY_TYPES + PAYMENTS_VIEW_TYPES)


def payments_router(app: FastAPI) -> APIRouter:
    """The payments routes."""
    router = APIRouter(tags=_TAGS)

    def answer(name: str, args: dict[str, str], height: int) -> Response:
        reader = app.state.identity  # state at a height, and the node's own module queries
        if not 0 <= height <= MAX_INT64:
            raise invalid_param(f"height: expected 0 (the latest) to {MAX_INT64}, got {height}")
        query = reader.module_query("payments", name)
        state = reader.state(height)
        try:
            return json_response(query(state, args))
        except LookupError as exc:
            raise not_found(str(exc).strip("'\"")) from None
        except ValueError as exc:
            raise invalid_param(str(exc)) from None

    @router.get("/payments/channels/{channel_id}", summary="A payment channel", responses=_doc("ChannelView", 400, 404))
    def channel(channel_id: int, height: int = Query(0)) -> Response:
        return answer("channel", {"id": _id(channel_id, "channel_id")}, height)

    @router.get("/payments/escrows/{escrow_id}", summary="An escrow", responses=_doc("EscrowView", 400, 404))
    def escrow(escrow_id: int, height: int = Query(0)) -> Response:
        return answer("escrow", {"id": _id(escrow_id, "escrow_id")}, height)

    @router.get("/payments/policies/{device}", summary="A device's spending policy",
                responses=_doc("PolicyView", 400, 404))
    def policy(device: str, height: int = Query(0)) -> Response:
        if not device.isprintable() or device.strip() != device:
            raise invalid_param("device: expected a did:city DID, got control characters or spaces")
        store = app.state.identity.node.store
        info = store.height_info(height or store.last_height()) if 0 <= height <= MAX_INT64 else None
        args = {"device": device}
        if info is not None:  # what it spent on that block's block-time day
            args["time_ns"] = str(info.time_ns)
        return answer("policy", args, height)

    @router.get("/payments/counterparties/{address}", summary="A declared counterparty",
                responses=_doc("CounterpartyView", 400, 404))
    def counterparty(address: str, height: int = Query(0)) -> Response:
        return answer("counterparty", {"address": address}, height)

    @router.get("/payments/locked", summary="Credits locked in escrows and channels", responses=_doc("LockedView", 400))
    def locked(height: int = Query(0)) -> Response:
        return answer("locked", {}, height)

    @router.post("/payments/vouchers/check", summary="Would the chain redeem this voucher now?",
                 openapi_extra={"requestBody": {"required": True, "content": {
                     "application/json": {"schema": _ref("VoucherCheckBody")}}}},
                 responses=_doc("VoucherCheckView", 400, 404, 409))
    async def check_voucher(request: Request) -> Response:
        body: VoucherCheckBody = decode_json(await read_body(request, MAX_PAYMENTS_BODY_BYTES), _VOUCHER_CHECK)
        return json_response(_check(app.state.identity, body))

    return router


def _check(reader: Any, body: VoucherCheckBody) -> VoucherCheckView:
    """Run the chain's redeem checks on a voucher against the latest committed state."""
    for name in ("channel_id", "amount", "nonce"):
        if not 0 <= getattr(body, name) <= MAX_INT64:
            raise invalid_body(f"{name}: expected 0 to {MAX_INT64}, got {getattr(body, name)}")
    if len(body.signature) > MAX_SIGNATURE_HEX:
        raise invalid_body(f"signature: expected at most {MAX_SIGNATURE_HEX} hex digits, got {len(body.signature)}")
    try:
        signature = bytes.fromhex(body.signature)
    except ValueError:
        raise invalid_body("signature: expected hex digits") from None
    state = reader.state(0)
    height = reader.node.store.last_height()
    record = get_channel(state, body.channel_id)
    if record is None:
        raise not_found(f"channel_id: no channel {body.channel_id}")
    try:
        adds = check_redeemable(record, reader.node.app.chain_id, height + 1, body.amount, body.nonce, signature)
    except TxError as exc:
        raise ApiError(409, f"{exc.codespace}/{exc.code}", exc.message) from None
    return VoucherCheckView(channel_id=body.channel_id, amount=body.amount, nonce=body.nonce, adds=adds,
                            payee=address_to_str(record.payee), height=height)
