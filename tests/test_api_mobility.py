"""Driving rewards over REST and the SDK: programmes (newest first, paged), an enrollment's pay per
period and paid claims by commitment, at a height or the latest; the claim check agreeing with the
handler and changing nothing; hostile values answered 400/404/409 naming the field, never 500; the
routes and their schemas in the OpenAPI document."""

from __future__ import annotations

import msgspec
import pytest
from fastapi.testclient import TestClient

from helpers import CHAIN_ID
from mobility_fixtures import PSEUDONYM, stored_claims
from test_api_helpers import free_port
from cityledger import sdk
from cityledger.api import create_app
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.identity import compute_did
from cityledger.modules.mobility import CreateProgramme, queries
from cityledger.modules.mobility import errors as E
from cityledger.node.home import init_home, load_config
from cityledger.node.runner import Node
from cityledger.offchain.mobility.rewards import issue_enrollment
from cityledger.sdk.mobility import claim_check_body
from cityledger.tools.bench_rewards import OFFICE_SECRET, _genesis
from cityledger.wire.mobility import ClaimCheckView, ClaimView, ProgrammesView, ProgrammeView
from cityledger.wire.owned import EnrollmentView

PERIOD_BLOCKS = 1_000
MAX_ID = 2**63 - 1


class World:
    """The node's keys and what the fixture committed: heights, claims."""

    def __init__(self, node: Node, sponsor: PrivateKey, driver: PrivateKey) -> None:
        self.node, self.sponsor, self.driver = node, sponsor, driver
        self.claims = stored_claims()
        self.heights: dict[str, int] = {}

    def commit(self, name: str, key: PrivateKey, nonce: int, messages: list) -> None:
        tx = build_tx(CHAIN_ID, [key], nonce, messages)
        result = self.node.engine.submit(tx).result
        assert result.code == 0, result.log
        self.node.engine.produce_block()
        self.heights[name] = self.node.store.last_height()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A node (chain CHAIN_ID, so the stored claims fit) with three programmes; the driver enrolled in
    programme 1 and paid for the stored good trip (the fair one is left to check)."""
    home = tmp_path_factory.mktemp("mobility-api") / "home"
    init_home(home, chain_id=CHAIN_ID, members=1, port=free_port(), issuers=False)
    office = PrivateKey(1, b"\x71" * 32)
    _, sponsor = _genesis(home, office)
    node = Node(load_config(home))
    world = World(node, sponsor, PrivateKey(1, b"\x72" * 32))
    terms = ("driving-score-v1", 10_000, 60, 100, 10, 500, 2_000, PERIOD_BLOCKS, 1_000_000,
             compute_did(office.signer(), b""))
    with TestClient(create_app(node)) as client:
        world.commit("created", sponsor, 0, [CreateProgramme(*terms)])
        ticket = issue_enrollment(office, OFFICE_SECRET, CHAIN_ID, 1, 0, "did:city:car", PSEUDONYM.public_key,
                                  world.driver.address())
        world.commit("enrolled", world.driver, 0, [ticket])
        world.commit("good", world.driver, 1, [world.claims["good"]])
        world.commit("more", sponsor, 1, [CreateProgramme(*terms), CreateProgramme(*terms)])
        client.world = world
        yield client
    node.store.close()


def _driver(api) -> str:
    return "city" + api.world.driver.address().hex()


def _strict(answer, kind):
    """The answer decoded as its wire Struct, with exactly that Struct's fields."""
    assert answer.status_code == 200, answer.text
    value = msgspec.json.decode(answer.content, type=kind)
    assert msgspec.to_builtins(value) == answer.json()
    return value


def test_programmes_newest_first_and_at_a_height(api):
    page = _strict(api.get("/mobility/programmes"), ProgrammesView)
    assert (page.count, [p.programme_id for p in page.items], page.next) == (3, [3, 2, 1], None)
    assert [p["programme_id"] for p in api.get("/mobility/programmes", params={"before": 3}).json()["items"]] == [2, 1]
    then = api.get("/mobility/programmes", params={"height": api.world.heights["created"]}).json()
    assert (then["count"], [p["programme_id"] for p in then["items"]]) == (1, [1])
    assert api.get("/mobility/programmes", params={"before": 1}).json()["items"] == []


def test_programmes_page_back_with_next(api, monkeypatch):
    monkeypatch.setattr(queries, "MAX_QUERY_PROGRAMMES", 2)
    first = api.get("/mobility/programmes").json()
    assert ([p["programme_id"] for p in first["items"]], first["next"]) == ([3, 2], 2)
    second = api.get("/mobility/programmes", params={"before": first["next"]}).json()
    assert ([p["programme_id"] for p in second["items"]], second["next"]) == ([1], None)


def test_programme_budget_paid_out_and_as_it_was(api):
    programme = _strict(api.get("/mobility/programmes/1"), ProgrammeView)
    assert (programme.budget, programme.remaining, programme.claims) == (10_000, 10_000 - 220, 1)
    assert programme.sponsor == "city" + api.world.sponsor.address().hex() and programme.min_score == 60
    before = api.get("/mobility/programmes/1", params={"height": api.world.heights["enrolled"]}).json()
    assert (before["remaining"], before["claims"]) == (10_000, 0)


def test_enrollment_paid_per_period(api):
    enrollment = _strict(api.get(f"/mobility/programmes/1/enrollments/{_driver(api)}"), EnrollmentView)
    assert (enrollment.period, enrollment.paid, enrollment.trips) == (0, 220, 1)
    assert enrollment.pseudonym_key.key == PSEUDONYM.public_key.key.hex()
    before_claims = api.get(f"/mobility/programmes/1/enrollments/{_driver(api)}",
                            params={"period": 0, "height": api.world.heights["enrolled"]}).json()
    assert (before_claims["paid"], before_claims["trips"]) == (0, 0)
    absent = api.get(f"/mobility/programmes/1/enrollments/{_driver(api)}", params={"period": 1})
    assert absent.status_code == 404 and absent.json()["error"]["field"] == "account"
    stranger = "city" + "ab" * 20
    assert api.get(f"/mobility/programmes/1/enrollments/{stranger}").json()["error"]["field"] == "account"


def test_claim_by_commitment_is_all_the_chain_keeps(api):
    good = api.world.claims["good"]
    claim = _strict(api.get(f"/mobility/programmes/1/claims/{good.commitment.hex()}"), ClaimView)
    assert (claim.score, claim.distance_km, claim.reward, claim.height) == (100, 12, 220, api.world.heights["good"])
    assert claim.trip_id == good.trip_id.hex() and claim.commitment == good.commitment.hex()
    upper = api.get(f"/mobility/programmes/1/claims/{good.commitment.hex().upper()}")
    assert upper.json() == msgspec.to_builtins(claim)
    early = api.get(f"/mobility/programmes/1/claims/{good.commitment.hex()}",
                    params={"height": api.world.heights["enrolled"]})
    assert early.status_code == 404 and early.json()["error"]["field"] == "commitment"
    elsewhere = api.get(f"/mobility/programmes/2/claims/{good.commitment.hex()}")
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["field"] == "commitment"


def test_sdk_reads_the_same_answers(api):
    good = api.world.claims["good"]
    with sdk.Client(base_url=str(api.base_url), transport=api._transport) as node:
        assert node.get_programme(1).remaining == 10_000 - 220
        page = node.get_programmes()
        assert [p.programme_id for p in page.items] == [3, 2, 1] and page.next is None
        assert [p.programme_id for p in node.get_programmes(before=2).items] == [1]
        assert node.get_enrollment(1, api.world.driver.address()).paid == 220
        assert node.get_enrollment(1, _driver(api), period=0, height=api.world.heights["enrolled"]).trips == 0
        assert node.get_claim(1, good.commitment).reward == 220
        assert node.get_claim(1, good.commitment.hex(), height=api.world.heights["good"]).score == 100
        with pytest.raises(sdk.ApiError) as missing:
            node.get_programme(9)
        assert (missing.value.status, missing.value.field) == (404, "programme_id")


def _check(api, claim, account=None):
    body = msgspec.json.encode(claim_check_body(claim, account or api.world.driver.address()))
    return api.post("/mobility/claims/check", content=body, headers={"content-type": "application/json"})


def _unchanged(api) -> tuple:
    """What a claim check must leave as it was: the height, programme 1, the driver's enrollment and balance."""
    driver = _driver(api)
    return (api.world.node.store.last_height(), api.get("/mobility/programmes/1").json(),
            api.get(f"/mobility/programmes/1/enrollments/{driver}").json(),
            api.get(f"/accounts/{driver}").json()["balance"])


def test_claim_check_pays_what_the_handler_would_and_changes_nothing(api):
    before = _unchanged(api)
    answer = _strict(_check(api, api.world.claims["fair"]), ClaimCheckView)
    assert (answer.score, answer.distance_km, answer.reward, answer.period) == (89, 40, 500, 0)
    assert (answer.account, answer.height) == (_driver(api), api.world.node.store.last_height())
    assert _check(api, api.world.claims["fair"]).json() == msgspec.to_builtins(answer)  # twice: still unpaid
    assert _unchanged(api) == before
    fair = api.world.claims["fair"].commitment.hex()
    assert api.get(f"/mobility/programmes/1/claims/{fair}").status_code == 404


def test_claim_check_refusals_name_the_field_and_change_nothing(api):
    claims, before = api.world.claims, _unchanged(api)
    forged = msgspec.structs.replace(claims["fair"], score_fixed=claims["good"].score_fixed)
    for claim, account, code, field in (
            (claims["good"], None, E.ERR_ALREADY_CLAIMED, "commitment"),
            (claims["poor"], None, E.ERR_BELOW_THRESHOLD, "score_fixed"),
            (forged, None, E.ERR_PROOF_REJECTED, "proof"),  # a score above the proven one
            (claims["fair"], PrivateKey(1, b"\x73" * 32).address(), E.ERR_NOT_ENROLLED, "account")):
        answer = _check(api, claim, account)
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (f"mobility/{code.code}", field), answer.text
    missing = _check(api, msgspec.structs.replace(claims["fair"], programme_id=9))
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "programme_id"
    assert _unchanged(api) == before


def test_claim_checks_past_the_limit_at_once_are_told_to_come_back(api):
    from cityledger.api.routes import mobility as routes

    held = [routes._CLAIM_CHECKS.acquire(blocking=False) for _ in range(routes.MAX_CLAIM_CHECKS_AT_ONCE)]
    try:
        assert all(held)  # as if that many checks were verifying proofs right now
        busy = _check(api, api.world.claims["fair"])
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "mobility/busy", busy.text
    finally:
        for _ in held:
            routes._CLAIM_CHECKS.release()
    assert _check(api, api.world.claims["fair"]).status_code == 200


def test_sdk_checks_a_claim(api):
    with sdk.Client(base_url=str(api.base_url), transport=api._transport) as node:
        assert node.check_claim(claim_check_body(api.world.claims["fair"], _driver(api))).reward == 500
        with pytest.raises(sdk.ApiError) as refused:
            node.check_claim(claim_check_body(api.world.claims["good"], _driver(api)))
        assert (refused.value.status, refused.value.field) == (409, "commitment")


def _body(**changes) -> bytes:
    fields = {"account": "city" + "00" * 20, "programme_id": 1, "trip_id": "00" * 32, "commitment": "00" * 32,
              "commitment_signature": "00" * 64, "score_fixed": 0, "distance_fixed": 0, "proof": "00"}
    return msgspec.json.encode(fields | changes)


@pytest.mark.parametrize("body, field", [
    (_body(account="city12"), "account"),
    (_body(account="city" + "00" * 20 + "\n"), "account"),
    (_body(programme_id=0), "programme_id"),
    (_body(programme_id=-1), "programme_id"),
    (_body(programme_id=2**63), "programme_id"),
    (_body(programme_id=2**64), "programme_id"),
    (_body(programme_id="1"), "programme_id"),
    (_body(score_fixed=-1), "score_fixed"),
    (_body(distance_fixed=2**63), "distance_fixed"),
    (_body(trip_id="00" * 31), "trip_id"),
    (_body(trip_id="00" * 33), "trip_id"),
    (_body(commitment="0" * 63), "commitment"),
    (_body(commitment="zz" * 32), "commitment"),
    (_body(commitment="00" * 31 + "0\n"), "commitment"),
    (_body(commitment_signature="0"), "commitment_signature"),
    (_body(commitment_signature="00" * 129), "commitment_signature"),
    (_body(proof="0 "), "proof"),
    (_body(proof="\u00ff"), "proof"),
    (_body(proof="00" * (16_384 + 1)), "proof"),
    (_body(extra=1), "extra"),
    (b'{"account": "\xff\xfe"}', "body"),
    (b"[" * 5_000 + b"]" * 5_000, "body"),
    (b"not json", "body"),
])
def test_invalid_claim_check_bodies_are_400_naming_the_field(api, body, field):
    before = _unchanged(api)
    answer = api.post("/mobility/claims/check", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field, answer.text
    assert _unchanged(api) == before


def test_an_oversized_claim_check_is_413(api):
    answer = api.post("/mobility/claims/check", content=b" " * (64 * 1024),
                      headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text


MISSING = "0" * 63 + "1"


@pytest.mark.parametrize("path, field", [
    ("/mobility/programmes/0", "programme_id"),
    ("/mobility/programmes/-1", "programme_id"),
    ("/mobility/programmes/9223372036854775808", "programme_id"),
    ("/mobility/programmes/99999999999999999999999", "programme_id"),
    ("/mobility/programmes/abc", "programme_id"),
    ("/mobility/programmes/1%0a", "programme_id"),
    ("/mobility/programmes/%0a1", "programme_id"),
    ("/mobility/programmes/+1", "programme_id"),
    ("/mobility/programmes/1.0", "programme_id"),
    ("/mobility/programmes/1_0", "programme_id"),
    ("/mobility/programmes/%ff", "programme_id"),
    ("/mobility/programmes/%c3%28", "programme_id"),
    ("/mobility/programmes/%25%00", "programme_id"),
    ("/mobility/programmes/1?height=-1", "height"),
    ("/mobility/programmes/1?height=9223372036854775808", "height"),
    ("/mobility/programmes/1?height=x", "height"),
    ("/mobility/programmes?before=0", "before"),
    ("/mobility/programmes?before=-5", "before"),
    ("/mobility/programmes?before=9223372036854775808", "before"),
    ("/mobility/programmes?before=%0a", "before"),
    ("/mobility/programmes?height=-1", "height"),
    ("/mobility/programmes/-1/enrollments/city" + "00" * 20, "programme_id"),
    ("/mobility/programmes/1/enrollments/city12", "account"),
    ("/mobility/programmes/1/enrollments/%0acity" + "00" * 20, "account"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "%0a", "account"),
    ("/mobility/programmes/1/enrollments/city" + "zz" * 20, "account"),
    ("/mobility/programmes/1/enrollments/%ff%fe", "account"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "?period=-1", "period"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "?period=1001", "period"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "?period=9223372036854775808", "period"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "?period=99999999999999999999999", "period"),
    ("/mobility/programmes/1/enrollments/city" + "00" * 20 + "?period=one", "period"),
    ("/mobility/programmes/1/claims/" + "0" * 63, "commitment"),
    ("/mobility/programmes/1/claims/" + "0" * 65, "commitment"),
    ("/mobility/programmes/1/claims/" + "0" * 62, "commitment"),
    ("/mobility/programmes/1/claims/" + "g" * 64, "commitment"),
    ("/mobility/programmes/1/claims/" + "0" * 63 + "%0a", "commitment"),
    ("/mobility/programmes/1/claims/%20" + "0" * 63, "commitment"),
    ("/mobility/programmes/1/claims/" + "0" * 62 + "%ff", "commitment"),
    ("/mobility/programmes/1/claims/" + "0" * 10_000, "commitment"),
    ("/mobility/programmes/1/claims/" + MISSING + "?height=-1", "height"),
    ("/mobility/programmes/x/claims/" + MISSING, "programme_id"),
])
def test_invalid_parameters_are_400_naming_the_field(api, path, field):
    answer = api.get(path)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field, answer.text


@pytest.mark.parametrize("path, field", [
    ("/mobility/programmes/4", "programme_id"),
    (f"/mobility/programmes/{MAX_ID}", "programme_id"),
    ("/mobility/programmes/1?height=999999", "height"),
    (f"/mobility/programmes/9/enrollments/city{'00' * 20}", "programme_id"),
    (f"/mobility/programmes/1/enrollments/city{'00' * 20}", "account"),
    (f"/mobility/programmes/9/claims/{MISSING}", "programme_id"),
    (f"/mobility/programmes/1/claims/{MISSING}", "commitment"),
    ("/mobility/programmes?height=999999", "height"),
])
def test_what_does_not_exist_is_404_naming_the_field(api, path, field):
    answer = api.get(path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["field"] == field, answer.text


def test_mobility_routes_and_schemas_are_in_the_openapi_document(api):
    document = api.get("/openapi.json").json()
    expected = {"/mobility/programmes": "ProgrammesView", "/mobility/programmes/{programme_id}": "ProgrammeView",
                "/mobility/programmes/{programme_id}/enrollments/{account}": "EnrollmentView",
                "/mobility/programmes/{programme_id}/claims/{commitment}": "ClaimView",
                "/mobility/model": "ScoreModelView", "/mobility/claims/check": "ClaimCheckView"}
    for path, view in expected.items():
        method = "post" if path.endswith("/check") else "get"
        responses = document["paths"][path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{view}"}
        assert view in document["components"]["schemas"]
    body = document["paths"]["/mobility/claims/check"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ClaimCheckBody"}
    assert "ClaimCheckBody" in document["components"]["schemas"]
    claim = document["components"]["schemas"]["ClaimView"]["properties"]
    assert set(claim) == {"programme_id", "trip_id", "commitment", "score", "distance_km", "reward", "height"}
    parameters = document["paths"]["/mobility/programmes/{programme_id}/enrollments/{account}"]["get"]["parameters"]
    assert {p["name"] for p in parameters} == {"programme_id", "account", "period", "height"}
