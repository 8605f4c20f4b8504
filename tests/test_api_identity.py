"""Identity over REST, driven by the SDK's IdentityClient against a live node (uvicorn in a thread).

The node's home comes from `init_home`, so the ID office and the transport office are hosted beside
it with their DIDs and accreditations in the genesis; credential definitions reuse the session's
key material (fast_cred_defs) so publishing takes well under the seconds a real one does.
"""

from __future__ import annotations

import hashlib

import httpx
import pydid
import pytest

from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import ALICE, MINOR, TODAY, fast_cred_defs
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.devices import BindDevice, compute_device_did
from cityledger.modules.identity import compute_did
from cityledger.modules.identity.did import b58encode
from cityledger.node.home import load_key
from cityledger.node.runner import Node
from cityledger.offchain.identity import RESIDENT_ID, VEHICLE_REGISTRATION
from cityledger.offchain.identity.devices import build_registration, prove_ownership, sign_device_message
from cityledger.sdk import ApiError, IdentityClient, sign


class Offices:
    """The live node, a client per office (with its token) and a public client."""

    def __init__(self, tn, server) -> None:
        self.tn, self.server, self.url = tn, server, server.url
        self.public = IdentityClient(server.url)
        by_folder = {item["folder"]: item["did"] for item in self.public.list_issuers()}
        self.id_did, self.transport_did = by_folder["id-office"], by_folder["transport-office"]
        self.id_office = IdentityClient(server.url, token=self.token("id-office"))
        self.transport = IdentityClient(server.url, token=self.token("transport-office"))

    def token(self, folder: str) -> str:
        return (self.tn.home / "issuers" / folder / "token").read_text().strip()

    def wallet(self, tmp_path, name: str):
        return self.public.open_wallet(tmp_path / f"{name}.wallet", "pw", create=True, tails_cache=tmp_path / "tails")

    def resident(self, tmp_path, values: dict):
        wallet = self.wallet(tmp_path, values["id_number"])
        offer = self.id_office.create_offer(self.id_did, RESIDENT_ID, values, values["id_number"])
        self.public.obtain_credential(wallet, offer)
        return wallet


@pytest.fixture(scope="module")
def offices(tmp_path_factory):
    tn = make_node(tmp_path_factory.mktemp("identity-api"))
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Offices(tn, server)
        city.id_office.publish(city.id_did, RESIDENT_ID)
        city.transport.publish(city.transport_did, VEHICLE_REGISTRATION)
        yield city


def error_of(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def test_did_document_resolves_at_heights_and_validates_with_pydid(offices):
    result = offices.public.resolve_did(offices.id_did)
    document = pydid.deserialize_document(result["didDocument"])
    assert str(document.id) == offices.id_did
    tails = document.dereference(f"{offices.id_did}#tails")
    assert tails.service_endpoint.endswith(f"/issuers/{offices.id_did}/tails/")
    assert result["didDocumentMetadata"]["cityledger:createdHeight"] == 0
    assert offices.public.resolve_did(offices.id_did, height=1)["didDocument"] == result["didDocument"]


def test_invalid_dids_and_heights_answer_the_error_shape(offices):
    unknown = compute_did(PrivateKey(1, b"\x55" * 32).signer(), b"")
    missing = error_of(lambda: offices.public.resolve_did(unknown))
    assert missing.status == 404 and missing.code == "api/not_found" and missing.field == "did"
    bad = error_of(lambda: offices.public.resolve_did("did:city:0OIl"))
    assert bad.status == 400 and bad.field == "did"
    future = error_of(lambda: offices.public.resolve_did(offices.id_did, height=10**9))
    assert future.status == 404 and future.field == "height"
    raw = httpx.get(f"{offices.url}/dids/{unknown}")
    assert raw.status_code == 404 and set(raw.json()["error"]) >= {"code", "message"}


def test_anchored_objects_and_the_trusted_issuer_registry(offices):
    ids = offices.public.get_issuer(offices.id_did)["published"][RESIDENT_ID]
    schema = offices.public.get_schema(ids["schema_id"])
    assert schema["schema"]["attrNames"] == ["birth_date", "district", "id_number", "name", "resident_since"]
    assert offices.public.get_cred_def(ids["cred_def_id"])["cred_def"]["schemaId"] == ids["schema_id"]
    registry = offices.public.get_rev_reg_def(ids["rev_reg_id"])["rev_reg_def"]
    status = offices.public.get_status_list(ids["rev_reg_id"])["status_list"]
    assert status["revRegDefId"] == ids["rev_reg_id"]
    assert offices.public.get_status_list(ids["rev_reg_id"], timestamp=status["timestamp"]) == {"status_list": status}
    tails = offices.public.get_tails(offices.id_did, registry["value"]["tailsHash"])
    assert b58encode(hashlib.sha256(tails).digest()) == registry["value"]["tailsHash"]
    assert error_of(lambda: offices.public.get_tails(offices.id_did, "1" * 44)).status == 404
    assert error_of(lambda: offices.public.get_schema(ids["schema_id"] + "x")).status == 404
    trusted = offices.public.get_trusted_issuers(credential_type=RESIDENT_ID)
    assert [(t["did"], t["credential_type"]) for t in trusted] == [(offices.id_did, RESIDENT_ID)]
    assert {t["credential_type"] for t in offices.public.get_trusted_issuers()} == {
        RESIDENT_ID, VEHICLE_REGISTRATION, "device-manufacturer"}


def test_issue_present_verify_then_revoke_over_rest(offices, tmp_path):
    wallet = offices.resident(tmp_path, dict(ALICE, id_number="REST-1"))
    other = offices.resident(tmp_path, dict(ALICE, id_number="REST-2", district="Altstadt"))
    request = offices.public.resident_request(TODAY, reveal=("district",))
    presentation = offices.public.present(wallet, request)
    assert ALICE["name"] not in presentation and str(ALICE["birth_date"]) not in presentation
    verdict = offices.public.verify(request, presentation)
    assert verdict == {"verified": True, "reason": "", "revealed": {"attr_district": "Nordstadt"},
                       "height": request["non_revoked"]["to"]}
    assert "nonce" in offices.public.verify(request, presentation)["reason"]  # each request verifies once

    revoked = offices.id_office.revoke(offices.id_did, ["REST-1"])
    assert revoked["revoked"] == 1 and revoked["height"] > request["non_revoked"]["to"]
    after = offices.public.resident_request(TODAY)
    verdict = offices.public.verify(after, offices.public.present(wallet, after))
    assert not verdict["verified"] and "does not verify" in verdict["reason"]
    still = offices.public.resident_request(TODAY)
    assert offices.public.verify(still, offices.public.present(other, still))["revealed"] == {
        "attr_district": "Altstadt"}


def test_invalid_unsatisfied_predicate_and_foreign_requests(offices, tmp_path):
    from cityledger.sdk import WalletError

    minor = offices.resident(tmp_path, dict(MINOR, id_number="REST-MINOR"))
    with pytest.raises(WalletError, match="cannot satisfy"):
        offices.public.present(minor, offices.public.resident_request(TODAY))
    altered = dict(offices.public.resident_request(TODAY), nonce="12345")
    verdict = offices.public.verify(altered, "{}")
    assert not verdict["verified"] and verdict["reason"].startswith("verifier: the seal does not match")
    unsealed = {k: v for k, v in offices.public.resident_request(TODAY).items() if k != "verifier"}
    assert offices.public.verify(unsealed, "{}")["reason"].startswith("verifier: missing")


def test_invalid_operator_calls_without_the_token_are_refused(offices):
    for client in (offices.public, IdentityClient(offices.url, token="wrong")):
        refused = error_of(lambda: client.create_offer(offices.id_did, RESIDENT_ID, ALICE, "X"))
        assert refused.status == 401 and refused.code == "api/unauthorized"
        assert error_of(lambda: client.revoke(offices.id_did, ["X"])).status == 401
    # The transport office's token is not the ID office's.
    crossed = IdentityClient(offices.url, token=offices.token("transport-office"))
    assert error_of(lambda: crossed.create_offer(offices.id_did, RESIDENT_ID, ALICE, "X")).status == 401
    unhosted = error_of(lambda: offices.public.get_issuer(compute_did(PrivateKey.generate().signer(), b"")))
    assert unhosted.status == 404


def test_invalid_offers_and_redemptions_are_refused(offices, tmp_path):
    office, did = offices.id_office, offices.id_did
    wrong = error_of(lambda: office.create_offer(did, RESIDENT_ID, {"name": "x"}, "R-1"))
    assert wrong.code == "issuer/refused" and wrong.field == "values"
    foreign = error_of(lambda: office.create_offer(did, VEHICLE_REGISTRATION, ALICE, "R-1"))
    assert foreign.code == "issuer/refused" and foreign.field == "credential_type"
    offer = office.create_offer(did, RESIDENT_ID, dict(ALICE, id_number="R-2"), "R-2")
    again = error_of(lambda: office.create_offer(did, RESIDENT_ID, dict(ALICE, id_number="R-2"), "R-2"))
    assert again.field == "reference"
    wallet = offices.wallet(tmp_path, "redeemer")
    request = offices.public.request_credential(wallet, offer)
    credential = offices.public.submit_credential_request(did, request)
    assert credential["type"] == "identity/1.0/credential" and credential["thread"] == offer["thread"]
    replay = error_of(lambda: offices.public.submit_credential_request(did, request))
    assert replay.code == "issuer/refused" and replay.field == "thread"
    malformed = httpx.post(f"{offices.url}/issuers/{did}/credentials", json={"thread": "1", "requestx": {}})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "api/invalid_body"


def test_invalid_presentation_requests_name_the_field(offices):
    post = lambda body: httpx.post(f"{offices.url}/verifier/requests", json=body)  # noqa: E731
    assert post({"credential_type": "Resident ID", "reveal": ["district"]}).json()["error"]["field"] == \
        "credential_type"
    bad_predicate = post({"credential_type": RESIDENT_ID, "predicates": [{"name": "birth_date", "p_type": "!=",
                                                                          "p_value": 1}]})
    assert bad_predicate.status_code == 400 and bad_predicate.json()["error"]["field"] == "predicates[0].p_type"
    assert post({"credential_type": RESIDENT_ID}).status_code == 400
    made = post({"credential_type": RESIDENT_ID, "reveal": ["district"]}).json()
    assert made["requested_attributes"]["attr_district"]["restrictions"] == [{"schema_name": RESIDENT_ID}]


def test_device_registered_bound_and_verified_over_rest(offices, tmp_path):
    public, tn = offices.public, offices.tn
    maker = load_key(tn.home / "keys" / "car-maker.json")
    device = PrivateKey(2, b"\x42" * 32)
    chain_id = public.status().chain_id
    registration = build_registration(chain_id, "vehicle", "CityCar-e1", device,
                                      compute_did(maker.signer(), b""), maker)
    public.submit(sign(chain_id, maker, public.get_nonce(maker.address()), [registration]), wait=True)
    did = compute_device_did(device.public_key)
    assert public.get_device(did)["owner"] is None

    wallet = offices.wallet(tmp_path, "driver")
    owner = wallet.account("vehicle")
    values = {"device_did": did, "owner_account": address_to_str(owner.address()), "registered_on": TODAY}
    offer = offices.transport.create_offer(offices.transport_did, VEHICLE_REGISTRATION, values, "REG-REST-1")
    public.obtain_credential(wallet, offer)
    proof = prove_ownership(wallet, public.ledger, chain_id, did, owner)
    bound = public.submit(sign(chain_id, owner, public.get_nonce(owner.address()), [BindDevice(did, proof)]),
                          wait=True)
    assert bound.result.ok, bound.result.log
    assert public.get_device(did)["owner"] == address_to_str(owner.address())

    signature = sign_device_message(device, did, b"kWh=12.5")
    assert public.verify_device_message(did, b"kWh=12.5", signature) == {"valid": True, "reason": ""}
    forged = public.verify_device_message(did, b"kWh=99", signature)
    assert not forged["valid"] and forged["reason"].startswith("signature:")
    assert error_of(lambda: public.get_device("did:city:" + "1" * 22)).status == 404


def test_openapi_documents_the_identity_routes(offices):
    schema = httpx.get(f"{offices.url}/openapi.json").json()
    for path in ("/dids/{did}", "/verifier/verify", "/issuers/{did}/offers", "/issuers/{did}/tails/{tails_hash}"):
        assert path in schema["paths"], path
    assert "OfferBody" in schema["components"]["schemas"] and "ErrorBody" in schema["components"]["schemas"]


def test_hosted_issuer_state_survives_a_restart(tmp_path):
    tn = make_node(tmp_path)
    with LiveServer(tn.node) as server, fast_cred_defs():
        city = Offices(tn, server)
        city.id_office.publish(city.id_did, RESIDENT_ID)
        city.resident(tmp_path, dict(ALICE, id_number="KEEP-1"))
        early = city.public.resident_request(TODAY)
    key_file = tn.home / "verifier.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    restarted = Node(tn.node.config)
    with LiveServer(restarted) as server:
        city = Offices(tn, server)
        wallet = city.wallet(tmp_path, "KEEP-1")  # reopened: it fetches tails files through this client
        # The verifier's key is the node's: a request made before the restart still verifies.
        assert city.public.verify(early, city.public.present(wallet, early))["verified"]
        assert city.public.get_issuer(city.id_did)["published"][RESIDENT_ID]["rev_reg_id"]
        assert city.id_office.revoke(city.id_did, ["KEEP-1"])["revoked"] == 1
        request = city.public.resident_request(TODAY)
        assert not city.public.verify(request, city.public.present(wallet, request))["verified"]
