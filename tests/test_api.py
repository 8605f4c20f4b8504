"""The REST API in-process (FastAPI's TestClient): every endpoint, its answers and its errors."""

from __future__ import annotations

import base64
import warnings

import pytest

from cityledger.core.hashing import compute_tx_id
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.core.accounts import account_key, decode_account, encode_account
from cityledger.sdk import verify_state_proof

from test_api_helpers import make_node

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cityledger.api import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def api(tmp_path):
    """A node whose blocks the test makes by hand, and a client of its API."""
    test_node = make_node(tmp_path)
    with TestClient(create_app(test_node.node)) as client:
        client.tn = test_node
        yield client
    test_node.node.store.close()


def transfer(tn, nonce: int, to: bytes, amount: int = 5, key=None) -> bytes:
    return build_tx(tn.chain_id, [key or tn.alice], nonce, [Transfer(to, amount)])


def produce(api) -> int | None:
    return api.tn.node.engine.produce_block()


def test_submit_then_commit_shows_status_result_block_and_account(api):
    tn, dest = api.tn, PrivateKey.generate().address()
    tx = transfer(tn, 0, dest, 7)
    answer = api.post("/txs", json={"tx": base64.b64encode(tx).decode()})
    assert answer.status_code == 200
    body = answer.json()
    tx_id = compute_tx_id(tx).hex()
    assert body["tx_id"] == tx_id and body["status"] == "pending" and body["check"]["ok"] is True
    assert api.get(f"/txs/{tx_id}").json()["status"] == "pending"
    assert api.get(f"/accounts/city{tn.alice.address().hex()}").json()["pending_nonce"] == 1

    height = produce(api)
    status = api.get(f"/txs/{tx_id}").json()
    assert status["status"] == "committed" and status["height"] == height and status["index"] == 0
    assert status["result"]["code"] == 0
    event = status["result"]["events"][0]
    assert event["type"] == "transfer" and {"key": "amount", "value": "7"} in event["attributes"]
    assert status["tx"]["nonce"] == 0 and status["tx"]["messages"][0]["type"] == "bank/1.0/transfer"

    block = api.get("/blocks/latest").json()
    assert block["height"] == height and block["tx_ids"] == [tx_id] and block["num_txs"] == 1
    assert block["app_hash"] == tn.app_hash().hex()
    assert api.get(f"/blocks/{height}", params={"txs": "true"}).json()["txs"] == [tx.hex()]

    account = api.get(f"/accounts/{dest.hex()}").json()
    assert account == {"address": "city" + dest.hex(), "balance": 7, "nonce": 0, "pending_nonce": 0,
                       "height": height}
    assert api.get(f"/accounts/city{tn.alice.address().hex()}").json()["nonce"] == 1


def test_submit_accepts_hex_and_0x_hex(api):
    tn, dest = api.tn, PrivateKey.generate().address()
    assert api.post("/txs", json={"tx": transfer(tn, 0, dest).hex()}).json()["check"]["ok"]
    assert api.post("/txs", json={"tx": "0x" + transfer(tn, 1, dest).hex(), "encoding": "hex"}).json()["check"]["ok"]


def test_submit_with_wait_returns_the_committed_result(tmp_path):
    test_node = make_node(tmp_path)
    with TestClient(create_app(test_node.node, manage_node=True)) as client:
        tx = transfer(test_node, 0, PrivateKey.generate().address())
        body = client.post("/txs", params={"wait": "true", "timeout_s": 10},
                           json={"tx": base64.b64encode(tx).decode()}).json()
        assert body["status"] == "committed" and body["result"]["code"] == 0 and body["timed_out"] is False
        waited = client.get(f"/txs/{body['tx_id']}/wait", params={"timeout_s": 5}).json()
        assert waited["status"] == "committed" and waited["height"] == body["height"]


def test_wait_times_out_while_pending_and_unknown_ids_are_unknown(api):
    tx = transfer(api.tn, 0, PrivateKey.generate().address())
    api.post("/txs", json={"tx": tx.hex()})
    waited = api.get(f"/txs/{compute_tx_id(tx).hex()}/wait", params={"timeout_s": 0.05}).json()
    assert waited["status"] == "pending"
    assert api.get(f"/txs/{'ab' * 32}").json()["status"] == "unknown"
    assert api.get(f"/txs/{'ab' * 32}/wait", params={"timeout_s": 0.05}).json()["status"] == "unknown"


def test_batch_checks_each_tx_in_order(api):
    tn, dest = api.tn, PrivateKey.generate().address()
    txs = [transfer(tn, nonce, dest, 1).hex() for nonce in range(50)]
    txs.insert(3, "not a tx!")
    txs.append(transfer(tn, 99, dest).hex())  # out of order
    body = api.post("/txs/batch", json={"txs": txs}).json()
    assert body["accepted"] == 50 and body["rejected"] == 2 and len(body["results"]) == 52
    bad = body["results"][3]
    assert bad["ok"] is False and bad["code"] == 1 and bad["log"].startswith("txs[3]:")
    assert body["results"][-1]["code"] == 6 and body["results"][-1]["log"].startswith("body.nonce:")
    assert all(r["ok"] for r in body["results"][:3] + body["results"][4:-1])
    produce(api)
    assert tn.balance(dest) == 50


def test_batch_limits(api):
    too_many = api.post("/txs/batch", json={"txs": ["00"] * 10_001})
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "api/too_many_txs"
    assert too_many.json()["error"]["field"] == "txs"
    empty = api.post("/txs/batch", json={"txs": []}).json()
    assert empty == {"accepted": 0, "rejected": 0, "results": []}
    wrong = api.post("/txs/batch", json={"txs": "abc"})
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "txs"


def test_state_with_proof_verifies_against_the_reported_app_hash(api):
    tn, dest = api.tn, PrivateKey.generate().address()
    api.post("/txs", json={"tx": transfer(tn, 0, dest, 9).hex()})
    first = produce(api)
    api.post("/txs", json={"tx": transfer(tn, 1, dest, 1).hex()})
    produce(api)
    key = account_key(dest)

    now = api.get(f"/state/{key.hex()}", params={"prove": "true"}).json()
    assert now["exists"] and decode_account(bytes.fromhex(now["value"])).balance == 10 and now["app_hash"] == tn.app_hash().hex()
    assert verify_state_proof(key, bytes.fromhex(now["value"]), now["proof_bytes"], now["app_hash"])
    assert verify_state_proof(key, bytes.fromhex(now["value"]), now["proof"], now["app_hash"])
    assert not verify_state_proof(key, encode_account(0, 11), now["proof_bytes"], now["app_hash"])

    then = api.get(f"/state/{key.hex()}", params={"prove": "true", "height": first}).json()
    assert then["height"] == first and decode_account(bytes.fromhex(then["value"])).balance == 9
    assert verify_state_proof(key, bytes.fromhex(then["value"]), then["proof_bytes"], then["app_hash"])
    assert not verify_state_proof(key, bytes.fromhex(then["value"]), then["proof_bytes"], now["app_hash"])

    absent_key = account_key(b"\x07" * 20)
    absent = api.get(f"/state/{absent_key.hex()}", params={"prove": "true"}).json()
    assert absent["exists"] is False and absent["value"] is None
    assert verify_state_proof(absent_key, None, absent["proof_bytes"], absent["app_hash"])
    plain = api.get(f"/state/{key.hex()}").json()
    assert plain["proof"] is None and plain["value"] == now["value"]


def test_state_errors_name_the_parameter(api):
    assert api.get("/state/zz").json()["error"]["field"] == "key_hex"
    missing = api.get("/state/0101", params={"height": 99, "prove": "true"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "height"
    negative = api.get("/state/0101", params={"height": -1})
    assert negative.status_code == 400 and negative.json()["error"]["field"] == "height"


def test_module_queries(api):
    tn = api.tn
    supply = api.get("/query/bank/supply").json()
    assert supply["path"] == "/bank/supply" and supply["result"]["supply"] > 0
    balance = api.get("/query/bank/balance", params={"address": "city" + tn.alice.address().hex()}).json()
    assert balance["result"]["balance"] == tn.balance(tn.alice)
    consortium = api.get("/query/governance/consortium").json()["result"]
    assert "city" + tn.alice.address().hex() in consortium["members"]
    nonce = api.get("/query/auth/nonce", params={"address": tn.alice.address().hex()}).json()
    assert nonce["result"] == {"nonce": 0}
    unknown = api.get("/query/bank/nothing")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "query/not_found"
    bad = api.get("/query/bank/balance", params={"address": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "address"


def test_blocks_errors(api):
    assert api.get("/blocks/0").json()["height"] == 0  # the genesis block
    missing = api.get("/blocks/5")
    assert missing.status_code == 404 and missing.json()["error"] == {
        "code": "api/not_found", "message": "height: no block at height 5 (latest is 0)", "field": "height"}
    assert api.get("/blocks/abc").json()["error"]["field"] == "height"
    assert api.get("/blocks/-1").status_code == 400


def test_status_health_metrics_openapi(api):
    tn = api.tn
    api.post("/txs", json={"tx": transfer(tn, 0, b"\x01" * 20).hex()})
    api.post("/txs", json={"tx": "00"})
    status = api.get("/status").json()
    assert status["chain_id"] == tn.chain_id and status["engine"] == "solo" and status["mempool_size"] == 1
    assert status["height"] == 0 and status["app_hash"] == tn.app_hash().hex()
    assert api.get("/health").json() == {"status": "ok", "height": 0}
    produce(api)
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for line in ("cityledger_blocks_committed_total 1.0", "cityledger_txs_committed_total 1.0",
                 "cityledger_mempool_size 0.0", 'cityledger_check_failures_total{code="1",codespace="tx"} 1.0'):
        assert line in text
    assert "cityledger_last_block_ms" in text
    openapi = api.get("/openapi.json").json()
    for path in ("/txs", "/txs/batch", "/txs/{tx_id}", "/txs/{tx_id}/wait", "/blocks/latest", "/blocks/{height}",
                 "/accounts/{address}", "/state/{key_hex}", "/query/{module}/{name}", "/status", "/health",
                 "/metrics"):
        assert path in openapi["paths"]
    schemas = openapi["components"]["schemas"]
    assert {"SubmitTxBody", "SubmitBatchBody", "BatchView", "ErrorBody", "TxStatusView"} <= set(schemas)
    assert openapi["paths"]["/txs/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SubmitBatchBody"}


@pytest.mark.parametrize("method, path, kwargs, status, code, field", [
    ("get", "/nowhere", {}, 404, "api/not_found", "path"),
    ("delete", "/txs", {}, 405, "api/method_not_allowed", "method"),
    ("post", "/txs", {"content": b"{"}, 400, "api/invalid_body", "body"),
    ("post", "/txs", {"json": {"tx": 5}}, 400, "api/invalid_body", "tx"),
    ("post", "/txs", {"json": {}}, 400, "api/invalid_body", "tx"),
    ("post", "/txs", {"json": {"tx": "00", "fee": 1}}, 400, "api/invalid_body", "fee"),
    ("post", "/txs", {"json": {"tx": "%%%"}}, 400, "api/invalid_body", "tx"),
    ("post", "/txs", {"json": {"tx": "00", "encoding": "utf8"}}, 400, "api/invalid_body", "encoding"),
    ("post", "/txs", {"content": b"x" * (1024 * 1024 + 1)}, 413, "api/body_too_large", "body"),
    ("get", "/txs/1234", {}, 400, "api/invalid_param", "tx_id"),
    ("get", f"/txs/{'00' * 32}/wait?timeout_s=0", {}, 400, "api/invalid_param", "timeout_s"),
    ("get", "/accounts/city123", {}, 400, "api/invalid_param", "address"),
])
def test_errors_have_one_shape_and_name_the_field(api, method, path, kwargs, status, code, field):
    answer = getattr(api, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["field"] == field and error["message"].startswith(field)


def test_health_is_503_when_the_engine_stopped_on_an_error(api, monkeypatch):
    engine = api.tn.node.engine
    assert api.get("/health").status_code == 200

    def broken_disk(request):
        raise OSError("disk full")

    # The block loop really runs and really dies: the engine, not a patched probe, reports it.
    monkeypatch.setattr(api.tn.node.app, "finalize_block", broken_disk)
    api.post("/txs", json={"tx": transfer(api.tn, 0, PrivateKey.generate().address()).hex()})
    with pytest.raises(OSError):
        engine.run_forever()
    answer = api.get("/health")
    assert answer.status_code == 503
    assert answer.json()["error"] == {"code": "api/unavailable", "message": "engine: stopped on OSError: disk full",
                                      "field": "engine"}
