"""Hostile input to the REST API (issue 11, defects 4, 6 and 8): every answer is a clean 4xx, never a 500.

In-process (FastAPI's TestClient) on a solo node whose home hosts the ID and transport offices, so the
operator routes are reached with their real tokens.
"""

from __future__ import annotations

import logging
import warnings

import pytest

from cityledger.api import create_app
from cityledger.api.codec import MAX_JSON_DEPTH, json_depth
from cityledger.api.service import CHECK_FAILED, MAX_CONSECUTIVE_CHECK_FAILURES
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.modules.governance import Vote

from test_api_helpers import make_node

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A client of a fresh node's API, with the DIDs and operator tokens of its hosted issuers."""
    tn = make_node(tmp_path_factory.mktemp("hardening"))
    with TestClient(create_app(tn.node), raise_server_exceptions=False) as client:
        client.tn = tn
        client.issuers = {item["folder"]: item["did"] for item in client.get("/issuers").json()["issuers"]}
        client.operator = {"authorization": "Bearer " + (tn.home / "issuers" / "id-office" / "token").read_text().strip()}
        yield client
    tn.node.store.close()


def body_routes(api) -> list[tuple[str, dict]]:
    """Every route that reads a JSON body, with the headers that get it past authorization."""
    did = api.issuers["id-office"]
    device = "did:city:" + "1" * 20
    return [("/txs", {}), ("/txs/batch", {}), (f"/devices/{device}/verify", {}), ("/verifier/requests", {}),
            ("/verifier/verify", {}), (f"/issuers/{did}/publish", api.operator), (f"/issuers/{did}/offers", api.operator),
            (f"/issuers/{did}/credentials", {}), (f"/issuers/{did}/revocations", api.operator)]


def assert_error(answer, status: int, code: str, field: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    return error


# -- defect 4: a batch answers every tx, whatever its check does ---------------------------------------


def test_batch_with_a_tx_whose_check_raises_answers_each_tx(api):
    tn, dest = api.tn, PrivateKey.generate().address()
    # The reproducer: 71 txs, a Vote on proposal -1 at position 35 (its check raised OverflowError).
    txs = [build_tx(tn.chain_id, [tn.alice], nonce, [Vote(-1, True)] if nonce == 35 else [Transfer(dest, 1)])
           for nonce in range(71)]
    answer = api.post("/txs/batch", json={"txs": [tx.hex() for tx in txs]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    results = body["results"]
    assert len(results) == 71 and body["accepted"] + body["rejected"] == 71
    assert all(r["ok"] for r in results[:35]) and not results[35]["ok"]
    assert body["accepted"] == sum(r["ok"] for r in results) == 35
    # What the answer says admitted is exactly what the mempool holds.
    for tx_id, result in ((r["tx_id"], r) for r in results):
        assert (api.get(f"/txs/{tx_id}").json()["status"] == "pending") == result["ok"]


def test_invalid_batch_when_the_engine_keeps_raising_answers_unchecked(api, monkeypatch, caplog):
    tn, dest = api.tn, PrivateKey.generate().address()
    txs = [build_tx(tn.chain_id, [tn.alice], nonce, [Transfer(dest, 1)]) for nonce in range(8)]

    def broken(*args):
        raise RuntimeError("engine down at /secret/home")

    monkeypatch.setattr(tn.node.engine, "submit_batch", broken)
    monkeypatch.setattr(tn.node.engine, "submit", broken)
    with caplog.at_level(logging.ERROR, logger="cityledger.api"):
        answer = api.post("/txs/batch", json={"txs": [tx.hex() for tx in txs]})
    assert answer.status_code == 200 and "/secret/home" not in answer.text
    results = answer.json()["results"]
    assert [(r["codespace"], r["code"]) for r in results] == [CHECK_FAILED] * 8
    tried = MAX_CONSECUTIVE_CHECK_FAILURES
    assert all("request" in r["log"] for r in results[:tried])
    assert all("not checked" in r["log"] for r in results[tried:])
    assert "/secret/home" in caplog.text  # the traceback went to the log, not to the client


# -- defect 6: malformed input ------------------------------------------------------------------------


def test_invalid_utf8_in_any_body_is_a_400_naming_the_body(api):
    bad_values = {"/txs": b'{"tx": "\xc3\x28"}', "/txs/batch": b'{"txs": ["ab", "\xed\xa0\x80"]}'}
    for path, headers in body_routes(api):
        for body in (b'{"\xff\xfe": 1}', bad_values.get(path, b'{"\xc3\x28": "x"}')):
            answer = api.post(path, content=body, headers={"content-type": "application/json", **headers})
            error = assert_error(answer, 400, "api/invalid_body", "body")
            assert "UTF-8" in error["message"], (path, error)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_bodies_are_a_400_before_parsing(api, depth):
    nested = b"[" * depth + b"]" * depth
    did = api.issuers["id-office"]
    for path, body in (("/verifier/verify", b'{"request": {"a": ' + nested + b'}, "presentation": "x"}'),
                       (f"/issuers/{did}/credentials", b'{"thread": "t", "request": {"a": ' + nested + b"}}")):
        error = assert_error(api.post(path, content=body), 400, "api/invalid_body", "body")
        assert f"limit of {MAX_JSON_DEPTH}" in error["message"]


def test_json_depth_ignores_brackets_inside_strings():
    text = b'{"a": "' + b"[" * 100 + b'", "b": [[1]]}'
    assert json_depth(text) == 3
    assert json_depth(b"[" * 100 + b"]" * 100) == 100


@pytest.mark.parametrize("url", [
    "/state/00?height=9223372036854775808",
    "/blocks/270443346051716338213607419412480?txs=true",
    "/blocks/-1",
    "/query/governance/proposal?id=-1",
    "/query/governance/proposal?id=18446744073709551616",
    "/query/bank/balance?address=99999999999999999999999999999999999999999999999999",
    "/dids/did:city:abc?height=9223372036854775808",
    "/schemas/x?timestamp=-1",
])
def test_out_of_range_integers_are_a_400_naming_the_parameter(api, url):
    answer = api.get(url)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] in ("height", "id", "address", "timestamp"), error


@pytest.mark.parametrize("suffix", ["%0a", "%0d%0a", "%20", "%00", "%ff"])
def test_a_did_with_trailing_junk_is_a_400_or_404(api, suffix):
    did = api.issuers["id-office"]
    answer = api.get(f"/dids/{did}{suffix}")
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["error"]["field"] == "did"


def test_an_unexpected_exception_is_a_generic_500_with_a_logged_request_id(api, monkeypatch, caplog):
    def broken():
        raise RuntimeError("disk at /secret/home/ledger.db went away")

    monkeypatch.setattr(api.app.state.service, "status", broken)
    with caplog.at_level(logging.ERROR, logger="cityledger.api"):
        answer = api.get("/status")
    error = assert_error(answer, 500, "api/internal")
    assert "secret" not in answer.text and "RuntimeError" not in answer.text
    request_id = error["message"].rsplit(" ", 1)[-1]
    assert request_id in caplog.text and "/secret/home" in caplog.text
    assert api.get("/health").status_code == 200


# -- defect 8: HEAD, Content-Type ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/status", "/blocks/latest", "/openapi.json", "/issuers", "/metrics"])
def test_head_answers_like_get_without_a_body(api, path):
    get, head = api.get(path), api.head(path)
    assert get.status_code == head.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_invalid_head_on_a_post_route_is_a_405(api):
    answer = api.head("/txs")
    assert answer.status_code == 405 and answer.content == b""
    assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/json; charset=latin-1", "application/xml"])
def test_invalid_content_type_is_a_415(api, content_type):
    for path, headers in body_routes(api):
        answer = api.post(path, content=b"{}", headers={"content-type": content_type, **headers})
        error = assert_error(answer, 415, "api/unsupported_media_type", "content-type")
        assert content_type in error["message"]


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=UTF-8",
                                          "application/problem+json"])
def test_json_content_types_are_accepted(api, content_type):
    headers = {} if content_type is None else {"content-type": content_type}
    answer = api.post("/txs", content=b'{"tx": "zz"}', headers=headers)
    assert_error(answer, 400, "api/invalid_body", "tx")


def test_bodies_in_flight_are_bounded_and_given_back(api, monkeypatch):
    from cityledger.api import codec

    assert codec._BodyBytes.held == 0  # every earlier request, 400s and 500s included, gave its share back
    monkeypatch.setattr(codec, "MAX_BODY_BYTES_IN_FLIGHT", 64)
    error = assert_error(api.post("/txs/batch", json={"txs": ["ab" * 64]}), 503, "api/busy", "body")
    assert str(64) in error["message"]
    assert codec._BodyBytes.held == 0
    assert_error(api.post("/txs", json={"tx": "zz"}), 400, "api/invalid_body", "tx")  # small bodies still pass
