"""Hostile input to the hosted issuer offices and the node's verifier, over real HTTP.

Every office and verifier route gets newlines, huge and negative integers, deep nesting, invalid
UTF-8, wrong shapes and oversized bodies: each answer is a 4xx in the API's error shape naming a
field, never a 5xx, never the node's home path, and the node still serves afterwards. Also the
caps on offers and the tails hash's form.
"""

from __future__ import annotations

import json

import httpx
import pytest

from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import ALICE, fast_cred_defs
from cityledger.api.routes.identity import MAX_IDENTITY_BODY_BYTES, MAX_IDENTITY_JSON_DEPTH
from cityledger.offchain.identity import RESIDENT_ID
from cityledger.offchain.identity.issuer import MAX_OFFER_VALUES, MAX_REFERENCE_CHARS, MAX_VALUE_CHARS
from cityledger.sdk import IdentityClient


class Office:
    """A live node hosting the ID office (Resident ID published), and raw HTTP to it."""

    def __init__(self, tn, server) -> None:
        self.tn, self.url = tn, server.url
        by_folder = {item["folder"]: item["did"] for item in IdentityClient(self.url).list_issuers()}
        self.did = by_folder["id-office"]
        token = (tn.home / "issuers" / "id-office" / "token").read_text().strip()
        self.client = IdentityClient(self.url, token=token)
        self.auth = {"authorization": f"Bearer {token}"}

    def post(self, path: str, body: bytes | dict, operator: bool = True) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json", **(self.auth if operator else {})}
        return httpx.post(self.url + path.format(did=self.did), content=content, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def office(tmp_path_factory):
    tn = make_node(tmp_path_factory.mktemp("issuer-hostile"))
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Office(tn, server)
        city.client.publish(city.did, RESIDENT_ID)
        yield city


ROUTES = ["/verifier/requests", "/verifier/verify", "/issuers/{did}/publish", "/issuers/{did}/offers",
          "/issuers/{did}/credentials", "/issuers/{did}/revocations"]
# A well-formed body per route, into which the hostile values are put.
VALID = {
    "/verifier/requests": {"credential_type": RESIDENT_ID, "reveal": ["district"],
                           "predicates": [{"name": "birth_date", "p_type": "<=", "p_value": 20070615}]},
    "/verifier/verify": {"request": {"nonce": "1"}, "presentation": "{}"},
    "/issuers/{did}/publish": {"credential_type": RESIDENT_ID},
    "/issuers/{did}/offers": {"credential_type": RESIDENT_ID, "values": ALICE, "reference": "HOSTILE-1"},
    "/issuers/{did}/credentials": {"type": "identity/1.0/credential-request", "thread": "1", "request": {}},
    "/issuers/{did}/revocations": {"references": ["HOSTILE-1"]},
}


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": [value]}
    return value


def _hostile_values() -> dict[str, object]:
    return {"newline": "resident-id\n", "spaces": " resident-id ", "nul": "a\x00b", "huge": 10**40,
            "negative": -(10**40), "min_i64": -(2**63), "float": 1e300, "empty": "", "list": [], "null": None,
            "deep": _nested(MAX_IDENTITY_JSON_DEPTH + 5), "long": "x" * 100_000, "unicode": "\u2028\ud7ff\U0010ffff"}


def _bodies(route: str):
    """(label, raw body): every top-level field of the valid body replaced by each hostile value, and more."""
    valid = VALID[route]
    for field in valid:
        for label, value in _hostile_values().items():
            yield f"{field}={label}", json.dumps(dict(valid, **{field: value})).encode()
    yield "invalid-utf8", json.dumps(valid).encode().replace(b'"', b'"\xff\xfe', 1)
    yield "invalid-utf8-in-string", json.dumps(valid).encode()[:-1] + b', "x": "\xc3\x28"}'
    yield "deep-arrays", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep = b'{"a":[' * 450 + b"1" + b"]}" * 450  # 900 levels, under msgspec's own limit
    for field in valid:
        yield f"{field}=deep-900", json.dumps(dict(valid, **{field: "DEEP"})).encode().replace(b'"DEEP"', deep)
    yield "not-json", b"{not json"
    yield "empty", b""
    yield "array", b"[1,2,3]"
    yield "number", b"1e400"
    yield "unknown-field", json.dumps(dict(valid, extra=1)).encode()


# Substitutions that leave a valid body: an empty list of reveals (or of predicates) beside the other.
STILL_VALID = {"/verifier/requests reveal=list", "/verifier/requests predicates=list"}


def _assert_clean(response: httpx.Response, home: str, label: str) -> None:
    assert response.status_code < 500, (label, response.status_code, response.text[:300])
    assert home not in response.text, (label, response.text[:300])
    if label.startswith("/verifier/verify") and response.status_code == 200:
        assert response.json()["verified"] is False, label  # a verdict: failed verifications are 200
        return
    if label in STILL_VALID:
        assert response.status_code == 200, label
        return
    assert response.status_code >= 400, (label, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] and error["message"], label


@pytest.mark.parametrize("route", ROUTES)
def test_invalid_hostile_bodies_answer_4xx_on_every_route(office, route):
    home = str(office.tn.home)
    for label, body in _bodies(route):
        _assert_clean(office.post(route, body), home, f"{route} {label}")
    oversized = office.post(route, b'{"x":"' + b"a" * MAX_IDENTITY_BODY_BYTES + b'"}')
    assert oversized.status_code == 413 and oversized.json()["error"]["field"] == "body"
    assert httpx.get(office.url + "/health", timeout=10).status_code == 200


def test_invalid_offer_values_past_their_caps_name_the_field(office):
    def refused(values=None, reference="CAP-1") -> dict:
        answer = office.post("/issuers/{did}/offers", {"credential_type": RESIDENT_ID, "values": values or ALICE,
                                                       "reference": reference})
        assert answer.status_code == 400, answer.text[:300]
        return answer.json()["error"]

    assert refused(dict(ALICE, name="x" * 900_000))["field"] == "values.name"  # the defect's 900 KB value
    assert refused(dict(ALICE, name="x" * (MAX_VALUE_CHARS + 1)))["field"] == "values.name"
    assert refused(dict(ALICE, district="Nordstadt\n"))["field"] == "values.district"
    assert refused(dict(ALICE, district=" Nordstadt"))["field"] == "values.district"
    assert refused(dict(ALICE, birth_date=2**40))["field"] == "values.birth_date"
    assert refused(dict(ALICE, birth_date=-(10**30)))["field"] in ("values", "values.birth_date")
    assert refused(dict(ALICE, name="\ud800"))["field"] in ("body", "values.name")  # a lone surrogate
    assert refused(dict(ALICE, name="\u00e9" * MAX_VALUE_CHARS, district="\u00e9" * MAX_VALUE_CHARS))["field"] == \
        "values"  # each within its cap, together past MAX_OFFER_VALUES_BYTES as stored
    many = {f"attr_{i}": "v" for i in range(MAX_OFFER_VALUES + 1)}
    assert refused(many)["field"] == "values"
    for reference in ("CAP-1\n", " CAP-1", "R" * (MAX_REFERENCE_CHARS + 1), "caf\u00e9", "a\tb"):
        assert refused(reference=reference)["field"] == "reference", reference
    # Within the caps the same office still makes offers.
    made = office.client.create_offer(office.did, RESIDENT_ID, dict(ALICE, name="x" * MAX_VALUE_CHARS), "CAP-OK")
    assert made["thread"]


def test_invalid_verifier_requests_name_the_field(office):
    def field_of(body: dict) -> str:
        answer = office.post("/verifier/requests", dict(VALID["/verifier/requests"], **body), operator=False)
        assert answer.status_code == 400, answer.text[:300]
        return answer.json()["error"]["field"]

    assert field_of({"credential_type": "resident-id\n"}) == "credential_type"
    assert field_of({"name": "check\n"}) == "name"
    assert field_of({"reveal": ["district\n"]}) == "reveal[0]"
    assert field_of({"reveal": ["district", "district"]}) == "reveal[1]"
    predicate = {"name": "birth_date", "p_type": "<=", "p_value": 2**31}
    assert field_of({"predicates": [predicate]}) == "predicates[0].p_value"
    assert field_of({"predicates": [dict(predicate, p_value=-(2**31) - 1)]}) == "predicates[0].p_value"
    assert field_of({"predicates": [dict(predicate, p_value=10**40)]}).startswith("predicates")
    assert field_of({"predicates": [dict(predicate, p_value=1), dict(predicate, p_value=2)]}) == \
        "predicates[1].name"


def test_invalid_tails_hashes_are_400_and_never_show_the_home(office):
    home = str(office.tn.home)
    base = f"{office.url}/issuers/{office.did}/tails/"
    for bad in ("a" * 1000, "0" * 64, "1" * 31, "%2e%2e", "abc%0a", "OIl0" * 11, "x" * 45):
        answer = httpx.get(base + bad, timeout=10)
        assert answer.status_code == 400, (bad, answer.status_code)
        assert answer.json()["error"]["field"] == "tails_hash" and home not in answer.text
    missing = httpx.get(base + "1" * 44, timeout=10)
    assert missing.status_code == 404 and home not in missing.text
    assert httpx.get(f"{office.url}/issuers/{office.did}%0a", timeout=10).status_code == 404


def test_an_office_whose_state_cannot_be_opened_answers_503_without_paths(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from cityledger.api import create_app

    tn = make_node(tmp_path)
    (tn.home / "issuers" / "id-office" / "state.sealed").write_bytes(b"CLW1" + b"\x00" * 64)  # damaged
    with TestClient(create_app(tn.node)) as client:
        did = next(i for i in tn.node.issuers.values() if i.config.folder.name == "id-office").did
        for answer in (client.get(f"/issuers/{did}"), client.get("/issuers")):
            assert answer.status_code == 503 and answer.json()["error"]["code"] == "issuer/unavailable"
            assert str(tn.home) not in answer.text and "City ID Office" in answer.text
    tn.node.store.close()
