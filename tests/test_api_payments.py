"""Payments over REST and the SDK: channels, escrows, locked credits, counterparties, policies, and the
voucher pre-check agreeing with the chain; hostile values answered 4xx naming the field."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from test_api_helpers import make_node
from cityledger import sdk
from cityledger.api import create_app
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.modules.payments import LockEscrow, OpenChannel, sign_voucher
from cityledger.wire.payments import VoucherCheckBody


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A node with one open channel (deposit 1,000) and one escrow, and a client of its API."""
    test_node = make_node(tmp_path_factory.mktemp("payments-api"))
    node, payer, payee = test_node.node, test_node.alice, test_node.bob
    with TestClient(create_app(node)) as client:
        blocks = [[Transfer(payee.address(), 1)],  # height 1: the state before any payment
                  [OpenChannel(payee.address(), 1_000, 3, payer.public_key), LockEscrow(payee.address(), 50, 100)]]
        for nonce, messages in enumerate(blocks):
            assert node.engine.submit(build_tx(test_node.chain_id, [payer], nonce, messages)).result.code == 0
            node.engine.produce_block()
        client.tn = test_node
        yield client
    node.store.close()


def check(api, amount: int, nonce: int, key=None, channel_id: int = 1) -> httpx.Response:
    signature = sign_voucher(key or api.tn.alice, api.tn.chain_id, channel_id, amount, nonce)
    return api.post("/payments/vouchers/check", json={"channel_id": channel_id, "amount": amount, "nonce": nonce,
                                                      "signature": signature.hex()})


def test_channel_escrow_and_locked_read_back(api):
    tn = api.tn
    channel = api.get("/payments/channels/1").json()
    assert channel["payer"] == "city" + tn.alice.address().hex() and channel["payee"] == "city" + tn.bob.address().hex()
    assert (channel["deposit"], channel["redeemed"], channel["balance"], channel["status"]) == (1_000, 0, 1_000, "open")
    assert api.get("/payments/escrows/1").json()["amount"] == 50
    assert api.get("/payments/locked").json()["locked"] == 1_050
    assert api.get("/payments/locked", params={"height": 1}).json()["locked"] == 0  # before the block that locked


def test_voucher_check_agrees_with_the_chain(api):
    answer = check(api, 400, 1)
    assert answer.status_code == 200 and answer.json()["adds"] == 400
    over = check(api, 1_001, 1)
    assert over.status_code == 409 and over.json()["error"]["field"] == "amount"
    forged = check(api, 400, 1, key=PrivateKey(1, b"\x44" * 32))
    assert forged.status_code == 409 and forged.json()["error"]["field"] == "signature"
    stale = check(api, 400, 0)
    assert stale.status_code == 409 and stale.json()["error"]["field"] == "nonce"
    assert check(api, 400, 1, channel_id=99).status_code == 404


def test_sdk_reads_the_same_answers(api):
    tn = api.tn
    # The SDK's own client, sending through the test client's in-process transport to the same app.
    with sdk.Client(base_url=str(api.base_url), transport=api._transport) as node:
        assert node.get_channel(1).deposit == 1_000
        assert node.get_escrow(1).payee == "city" + tn.bob.address().hex()
        assert node.get_locked().locked == 1_050
        signature = sign_voucher(tn.alice, tn.chain_id, 1, 10, 1)
        assert node.check_voucher(VoucherCheckBody(1, 10, 1, signature.hex())).adds == 10
        with pytest.raises(sdk.ApiError) as refused:
            node.check_voucher(VoucherCheckBody(1, 10, 1, (b"\x00" * 64).hex()))
        assert refused.value.status == 409


@pytest.mark.parametrize("path", [
    "/payments/channels/0", "/payments/channels/-1", "/payments/channels/99999999999999999999",
    "/payments/channels/1?height=-1", "/payments/channels/1?height=9223372036854775808",
    "/payments/escrows/abc", "/payments/counterparties/city12", "/payments/counterparties/%0acity",
    "/payments/policies/did%3Acity%3Ax%0a", "/payments/policies/%20did",
])
def test_invalid_parameters_are_400_naming_the_field(api, path):
    answer = api.get(path)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] in ("channel_id", "escrow_id", "height", "address", "device")


@pytest.mark.parametrize("body", [
    b'{"channel_id": 1, "amount": -1, "nonce": 1, "signature": "00"}',
    b'{"channel_id": 1, "amount": 18446744073709551616, "nonce": 1, "signature": "00"}',
    b'{"channel_id": 1, "amount": 1, "nonce": 1, "signature": "zz"}',
    b'{"channel_id": 1, "amount": 1, "nonce": 1, "signature": "' + b"0" * 100_000 + b'"}',
    b'{"channel_id": 1, "amount": 1, "nonce": 1, "signature": "\xff\xfe"}',
    b'{"channel_id": 1, "amount": 1, "nonce": 1, "signature": "00\\n"}',
    b'[' * 5_000 + b']' * 5_000,
    b'{"channel_id": 1, "amount": 1, "nonce": 1, "signature": "00", "extra": 1}',
])
def test_invalid_voucher_check_bodies_are_4xx_and_change_nothing(api, body):
    before = api.get("/payments/channels/1").json()
    answer = api.post("/payments/vouchers/check", content=body, headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert "error" in answer.json()
    assert api.get("/payments/channels/1").json() == before


def test_payments_routes_are_in_the_openapi_document(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/payments/channels/{channel_id}", "/payments/escrows/{escrow_id}", "/payments/policies/{device}",
                 "/payments/counterparties/{address}", "/payments/locked", "/payments/vouchers/check"):
        assert path in paths


def test_missing_policy_and_counterparty_are_404_naming_the_field(api):
    missing = api.get("/payments/policies/did:city:4EyGwS8WxXvuPyDJMx7D5u")
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "device"
    address = "city" + api.tn.alice.address().hex()
    assert api.get(f"/payments/counterparties/{address}").json()["error"]["field"] == "address"
