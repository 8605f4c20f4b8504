"""Battery passports served by an in-process node: import, public read, restricted reads, access log.

The node's genesis (an `init` home) is extended with the car maker accredited as battery
manufacturer and a market-surveillance office accredited for the two reader credentials
(offchain/passport/access.TIER_CREDENTIALS); the office runs in the test on the node's own ledger,
and its holders' presentations go through the node's verifier over REST.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import httpx
import msgspec
import pytest

from passport_example import PASSPORT_ID, example
from test_api_helpers import LiveServer
from test_identity_fixtures import fast_cred_defs
from cityledger.core.keys import SCHEME_NAMES, PrivateKey
from cityledger.modules.batteries import (ROLE_MANUFACTURER, ROLE_PASSPORT_SERVICE, ROLE_VEHICLE_MAKER, Install,
                                         PlaceOnMarket, RegisterPassport, ReportHealth, compute_report_payload,
                                         get_passport, get_report_root)
from cityledger.modules.devices import compute_device_did
from cityledger.offchain.identity.devices import build_registration, sign_device_message
from cityledger.offchain.passport.reports import compute_report_hash
from cityledger.offchain.passport.store import ReportBook
from cityledger.modules.identity import compute_did
from cityledger.node.home import PassportsConfig, init_home, load_config, load_key
from cityledger.node.issuers import compute_manufacturer_entry
from cityledger.node.runner import Node
from cityledger.offchain.identity import IssuerService, TailsFetcher, TailsStore, Wallet
from cityledger.offchain.identity.ledger import NodeLedger
from cityledger.offchain.identity.types import (BATTERY_AUTHORITY, BATTERY_AUTHORITY_TYPE, BATTERY_LEGITIMATE_INTEREST,
                                                BATTERY_LEGITIMATE_INTEREST_TYPE)
from cityledger.offchain.passport import compute_put_payload
from cityledger.sdk import Client
from cityledger.sdk.passports import sign_log_read, verify_passport_log
from cityledger.wire import AccessLogView, AlertsView, PassportDocumentView, PassportStoredView, ReportBatchView

OFFICE_SEED = b"\x5c" * 32
RIVAL_SEED = b"\x6d" * 32
READER = "did:city:repairshop-example"
AUTHORITY = "did:city:market-surveillance-example"


def strict(response: httpx.Response, kind: type) -> dict:
    """The answer, checked to carry exactly the wire Struct's fields."""
    assert response.status_code == 200, response.text
    assert msgspec.to_builtins(msgspec.json.decode(response.content, type=kind)) == response.json()
    return response.json()


def _extend_genesis(home) -> None:
    """Accredit the car maker as battery manufacturer, add the surveillance office with both reader types."""
    path = home / "genesis.json"
    genesis = json.loads(path.read_text())
    car_maker = load_key(home / "keys" / "car-maker.json")
    dids = genesis["app_state"]["identity"]["dids"]
    maker_entry = next(e for e in dids if e["controller"]["keys"][0]["key"] == car_maker.public_key.key.hex())
    maker_entry["accreditations"] += [ROLE_MANUFACTURER, ROLE_VEHICLE_MAKER]
    office = compute_manufacturer_entry(PrivateKey(1, OFFICE_SEED))
    office["accreditations"] = [BATTERY_LEGITIMATE_INTEREST, BATTERY_AUTHORITY]
    dids.append(office)
    rival = compute_manufacturer_entry(PrivateKey(1, RIVAL_SEED))
    rival["accreditations"] = [ROLE_MANUFACTURER]
    dids.append(rival)
    service = compute_manufacturer_entry(load_key(home / "node_key.json"))  # the node's own passport service
    service["accreditations"] = [ROLE_PASSPORT_SERVICE]
    dids.append(service)
    path.write_text(json.dumps(genesis))


class City:
    """The live node, the surveillance office, and helpers to sign, issue and present."""

    def __init__(self, tmp_path, server: LiveServer, node: Node) -> None:
        self.url, self.node, self.tmp_path = server.url, node, tmp_path
        self.maker = load_key(tmp_path / "home" / "keys" / "car-maker.json")
        self.maker_did = compute_did(self.maker.signer(), b"")
        self.ledger = NodeLedger(node)
        self.rival = PrivateKey(1, RIVAL_SEED)
        self.rival_did = compute_did(self.rival.signer(), b"")
        tails = TailsStore(tmp_path / "office-tails", "https://surveillance.city.example/tails/")
        self.office = IssuerService(self.ledger, [PrivateKey(1, OFFICE_SEED)], tails)
        with fast_cred_defs():
            for ctype in (BATTERY_LEGITIMATE_INTEREST_TYPE, BATTERY_AUTHORITY_TYPE):
                self.office.publish(replace(ctype, max_cred_num=16))

    def put(self, document: dict, base: int, key: PrivateKey | None = None, operator: str | None = None):
        key = key or self.maker
        payload = compute_put_payload(self.node.app.chain_id, PASSPORT_ID, base, document)
        signature = {"scheme": SCHEME_NAMES[key.scheme], "key": key.public_key.key.hex(),
                     "signature": key.sign(payload).hex()}
        body = {"operator": operator or self.maker_did, "base": base, "document": document,
                "signatures": [signature]}
        return httpx.put(f"{self.url}/passports/{PASSPORT_ID}", json=body, timeout=30)

    def log(self, keys: list[PrivateKey] | None = None, reader: str | None = None, height: int | None = None,
            passport_id: str = PASSPORT_ID, **params) -> httpx.Response:
        """GET the passport's access log, signed by `keys` (default: the maker, its responsible operator)."""
        height = self.node.store.last_height() if height is None else height
        auth = sign_log_read(self.node.app.chain_id, keys or [self.maker], reader or self.maker_did, passport_id,
                             height)
        return httpx.get(f"{self.url}/passports/{passport_id}/log", params={**auth, **params}, timeout=30)

    def wallet(self, credential_type: str, holder: str, reference: str) -> Wallet:
        fetch = TailsFetcher(self.tmp_path / "tails-cache",
                             transport=lambda url: self.office.serve_tails(url.rsplit("/", 1)[-1]))
        wallet = Wallet.in_memory(fetch)
        offer = self.office.offer(credential_type)
        request = wallet.request_credential(offer, self.ledger)
        issued = self.office.issue(request, {"holder_did": holder, "role": "reader"}, reference)
        wallet.store_credential(issued, self.ledger)
        return wallet

    def read(self, wallet: Wallet, credential_type: str, tier: str) -> httpx.Response:
        request = httpx.post(f"{self.url}/verifier/requests", json={
            "credential_type": credential_type, "reveal": ["holder_did"]}).json()
        presentation = wallet.present(request, self.ledger)
        return httpx.post(f"{self.url}/passports/{PASSPORT_ID}/read",
                          json={"tier": tier, "request": request, "presentation": presentation}, timeout=30)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("passports-api")
    home = tmp_path / "home"
    init_home(home)
    _extend_genesis(home)
    config = load_config(home)
    config.solo.block_interval_ms = 20
    config.passports = PassportsConfig(anchor=True, anchor_interval_s=1)  # workers: test_passport_anchoring.py
    node = Node(config)
    with LiveServer(node) as server:
        yield City(tmp_path, server, node)


def test_master_key_is_owner_only_beside_the_store(city):
    key_file = city.tmp_path / "home" / "passport-master.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert city.node.passports.directory == city.tmp_path / "home" / "passports"


def test_import_read_refuse_accept_and_log(city):
    document = example()
    # Import: a wrong signer, a wrong base and an invalid document are refused, nothing stored.
    stranger = PrivateKey(1, b"\x77" * 32)
    refused = city.put(document, 0, key=stranger)
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "signatures"
    assert city.put(document, 5).status_code == 409
    broken = example()
    broken["identification"]["idDmc"] = 5
    del broken["metadata"]["issueDate"]
    invalid = city.put(broken, 0).json()["error"]
    assert invalid["code"] == "passport/invalid"
    assert {"$.identification.idDmc", "$.metadata.issueDate"} <= {i["path"] for i in invalid["issues"]}
    assert httpx.get(f"{city.url}/passports/{PASSPORT_ID}").status_code == 404
    # A rival's refused document claims nothing: the maker's own first version still goes in below.
    assert city.put(broken, 0, key=city.rival, operator=city.rival_did).status_code == 400

    answer = strict(city.put(document, 0), PassportStoredView)
    assert answer["base"] == 3 and {t["tier"] for t in answer["latest"]} == {"public", "legitimate", "authority"}
    assert city.put(document, 3).json()["written"] == []  # the same document: no new version
    # Another accredited manufacturer may not take over a passport stored before its registration.
    rival = city.put(document, 3, key=city.rival, operator=city.rival_did).json()["error"]
    assert rival["field"] == "operator" and "first stored by" in rival["message"]

    # Public read: anyone, public fields only, not logged.
    public = strict(httpx.get(f"{city.url}/passports/{PASSPORT_ID}"), PassportDocumentView)
    assert public["document"]["identification"] == document["identification"]
    assert "dynamic" not in public["document"].get("performance", {})
    assert city.log().json()["entries"] == []

    # Restricted: without a presentation, with the wrong credential type, with a revoked credential.
    bare = httpx.post(f"{city.url}/passports/{PASSPORT_ID}/read", json={"tier": "legitimate", "request": {},
                                                                       "presentation": "{}"})
    assert bare.status_code == 403 and bare.json()["error"]["field"] == "request"
    legit = city.wallet(BATTERY_LEGITIMATE_INTEREST, READER, "LEGIT-1")
    wrong = city.read(legit, BATTERY_LEGITIMATE_INTEREST, "authority")
    assert wrong.status_code == 403 and BATTERY_AUTHORITY in wrong.json()["error"]["message"]
    revoked = city.wallet(BATTERY_LEGITIMATE_INTEREST, "did:city:revoked-reader", "LEGIT-2")
    city.office.revoke(["LEGIT-2"]).raise_for_error()
    denied = city.read(revoked, BATTERY_LEGITIMATE_INTEREST, "legitimate")
    assert denied.status_code == 403 and denied.json()["error"]["field"] == "presentation"
    assert city.log().json()["entries"] == []

    # Accepted: the legitimate tier with its credential, the whole document with the authority's.
    read = strict(city.read(legit, BATTERY_LEGITIMATE_INTEREST, "legitimate"), PassportDocumentView)
    assert read["document"]["performance"]["dynamic"] == document["performance"]["dynamic"]
    assert "testReport" not in read["document"]["performance"]["rated"]  # authority only
    authority = city.read(city.wallet(BATTERY_AUTHORITY, AUTHORITY, "AUTH-1"), BATTERY_AUTHORITY, "authority")
    assert authority.status_code == 200 and authority.json()["document"] == document

    log = strict(city.log(), AccessLogView)
    assert [(e["tier"], e["reader_did"]) for e in log["entries"]] == [
        ("legitimate", READER), ("legitimate", AUTHORITY), ("authority", AUTHORITY)]
    assert city.node.passports.verify_log(PASSPORT_ID) == log["head_hash"] == log["entries"][-1]["hash"]


def _covered(view: dict) -> bool:
    """True once the anchors on chain cover the whole log (no read comes in meanwhile in this test)."""
    return bool(view["anchors"]) and view["anchors"][-1]["count"] == view["head_seq"]


def test_node_anchors_the_log_itself_and_the_operator_verifies_it(city):
    """The node's anchoring thread puts one root over the moved heads on chain; the SDK checks the log."""
    assert city.log().json()["entries"], "runs after test_import_read_refuse_accept_and_log"
    deadline = time.monotonic() + 60  # a bound on the wait, not an assertion on time
    while not _covered(view := city.log().json()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert view["service"] == city.node.passport_service and _covered(view)
    root = httpx.get(f"{city.url}/query/batteries/log_root", params={"service": view["service"]}).json()["result"]
    assert root["seq"] >= view["anchors"][-1]["seq"] >= 1
    auth = sign_log_read(city.node.app.chain_id, [city.maker], city.maker_did, PASSPORT_ID,
                         city.node.store.last_height())
    with Client(city.url) as client:
        assert verify_passport_log(client, PASSPORT_ID, auth) == view["head_seq"] >= 1


def test_log_answers_only_the_operator_signing_a_recent_height(city):
    assert city.put(example(), 0).status_code in (200, 409)  # stored by the maker (maybe by a test before)
    url = f"{city.url}/passports/{PASSPORT_ID}/log"
    last = city.node.store.last_height()
    refusals = {
        "reader": [httpx.get(url), city.log(keys=[city.rival], reader=city.rival_did),
                   city.log(reader="city" + "ab" * 20), city.log(reader="did:city:nobody")],
        "signature": [city.log(keys=[city.rival]), httpx.get(url, params={"reader": city.maker_did, "height": last})],
        "height": [city.log(height=last + 1)],
    }
    if last > 100:
        refusals["height"].append(city.log(height=last - 101))
    for field, answers in refusals.items():
        for answer in answers:
            assert answer.status_code == 403, (field, answer.text)
            assert answer.json()["error"]["field"] == field, (field, answer.text)
    # A signature for another passport or another height does not carry over.
    other = sign_log_read(city.node.app.chain_id, [city.maker], city.maker_did, "6b0f9a52-3c1e-4d2a-9f3b-2a7c5e8d1f40",
                          last)
    assert httpx.get(url, params=other).json()["error"]["field"] == "signature"
    moved = {**sign_log_read(city.node.app.chain_id, [city.maker], city.maker_did, PASSPORT_ID, last),
             "height": max(0, last - 1)}
    if last:
        assert httpx.get(url, params=moved).json()["error"]["field"] == "signature"
    malformed = httpx.get(url, params={"reader": city.maker_did, "height": last, "signature": "ed25519:zz:00"})
    assert malformed.status_code == 400 and malformed.json()["error"]["field"] == "signature[0]"
    assert city.log().status_code == 200


def test_refusals_name_the_field_and_are_never_5xx(city):
    url = f"{city.url}/passports"
    answers = [
        httpx.get(f"{url}/not-a-uuid"),
        httpx.put(f"{url}/{PASSPORT_ID}", content=b"\xff\xfe", headers={"content-type": "application/json"}),
        httpx.put(f"{url}/{PASSPORT_ID}", json={"operator": "did:city:0OIl", "base": 0, "document": example(),
                                                "signatures": []}),
        httpx.put(f"{url}/{PASSPORT_ID}", json={"operator": city.maker_did, "base": -1, "document": {},
                                                "signatures": []}),
        httpx.put(f"{url}/{PASSPORT_ID}", json={"operator": city.maker_did, "base": 0, "document": {"metadata": 1},
                                                "signatures": []}),
        httpx.post(f"{url}/{PASSPORT_ID}/read", json={"tier": "public", "request": {}, "presentation": ""}),
        httpx.post(f"{url}/{PASSPORT_ID}/read", json={"tier": ["x"], "request": {}, "presentation": ""}),
        httpx.get(f"{url}/{PASSPORT_ID}/log", params={"limit": 0}),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
        assert answer.json()["error"]["message"]


def _hostile_bodies(valid: dict):
    """(label, raw body): each field of `valid` replaced by each hostile value, and broken JSON."""
    from test_issuer_hostile import _hostile_values

    for field in valid:
        for label, value in _hostile_values().items():
            yield f"{field}={label}", json.dumps(dict(valid, **{field: value})).encode()
    deep = b'{"a":[' * 450 + b"1" + b"]}" * 450
    for field in valid:
        yield f"{field}=deep-900", json.dumps(dict(valid, **{field: "DEEP"})).encode().replace(b'"DEEP"', deep)
    yield "invalid-utf8", json.dumps(valid).encode().replace(b'"', b'"\xff\xfe', 1)
    yield "not-json", b"{not json"
    yield "empty", b""
    yield "array", b"[1,2,3]"
    yield "unknown-field", json.dumps(dict(valid, extra=1)).encode()


@pytest.mark.parametrize("method,route", [("PUT", ""), ("POST", "/read")])
def test_invalid_hostile_bodies_answer_4xx(city, method, route):
    from cityledger.api.routes.batteries import MAX_PASSPORT_BODY_BYTES, MAX_READ_BODY_BYTES

    request = {"nonce": "1", "non_revoked": {"to": 1}, "requested_attributes": {"attr_holder_did": {
        "name": "holder_did", "restrictions": [{"schema_name": BATTERY_LEGITIMATE_INTEREST}]}}}
    if method == "PUT":
        document = example()
        payload = compute_put_payload(city.node.app.chain_id, PASSPORT_ID, 0, document)
        body = {"operator": city.maker_did, "base": 0, "document": document, "signatures": [
            {"scheme": "ed25519", "key": city.maker.public_key.key.hex(), "signature": city.maker.sign(payload).hex()}]}
        limit = MAX_PASSPORT_BODY_BYTES
    else:
        body, limit = {"tier": "legitimate", "request": request, "presentation": "{}"}, MAX_READ_BODY_BYTES
    url = f"{city.url}/passports/{PASSPORT_ID}{route}"
    home = str(city.tmp_path / "home")
    for label, raw in _hostile_bodies(body):
        answer = httpx.request(method, url, content=raw, headers={"content-type": "application/json"}, timeout=30)
        assert 400 <= answer.status_code < 500, (label, answer.status_code, answer.text[:300])
        assert answer.json()["error"]["message"] and home not in answer.text, label
    oversized = httpx.request(method, url, content=b'{"x":"' + b"a" * limit + b'"}',
                              headers={"content-type": "application/json"}, timeout=30)
    assert oversized.status_code == 413 and oversized.json()["error"]["field"] == "body"
    assert httpx.get(f"{city.url}/health", timeout=10).status_code == 200


def test_cli_import_anchors_and_export_returns_every_field(city, tmp_path):
    from typer.testing import CliRunner

    from cityledger.cli.main import app
    from cityledger.modules.devices import compute_device_did
    from cityledger.offchain.identity.devices import build_registration
    from cityledger.sdk import Keystore
    from cityledger.sdk.keystore import MIN_SCRYPT_N

    env = {"CL_PASS": "open sesame"}
    home = str(city.tmp_path / "home")
    Keystore(city.tmp_path / "home" / "keystore", scrypt_n=MIN_SCRYPT_N).import_key("maker", city.maker,
                                                                                    env["CL_PASS"])
    battery = PrivateKey(1, b"\x3b" * 32)
    city.ledger.send([city.maker], [build_registration(city.node.app.chain_id, "battery", "EVB-1", battery,
                                                       city.maker_did, city.maker)]).raise_for_error()
    document = example()
    passport_id = "6b0f9a52-3c1e-4d2a-9f3b-2a7c5e8d1f40"
    document["metadata"]["passportIdentifier"] = passport_id
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))

    def run(*args: str):
        result = CliRunner().invoke(app, [*args, "--home", home, "--node", city.url], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    imported = json.loads(run("battery", "import", "--file", str(path), "--as", "maker", "--battery",
                              compute_device_did(battery.public_key), "--passphrase-env", "CL_PASS", "--json"))
    onchain = httpx.get(f"{city.url}/query/batteries/passport", params={"id": passport_id}).json()["result"]
    assert onchain["operator"] == city.maker_did and onchain["stage"] == "manufactured"
    assert {tier: versions[-1]["hash"] for tier, versions in onchain["documents"].items()} == imported["hashes"]

    # An update: only the changed tier gets a new version, on chain too.
    document["performance"]["dynamic"]["stateOfCharge"]["value"] = 42
    path.write_text(json.dumps(document))
    updated = json.loads(run("battery", "import", "--file", str(path), "--as", "maker", "--passphrase-env",
                             "CL_PASS", "--json"))
    assert updated["written"] == ["legitimate"] and updated["anchored_at"] is not None
    onchain = httpx.get(f"{city.url}/query/batteries/passport", params={"id": passport_id}).json()["result"]
    assert [len(onchain["documents"][t]) for t in ("public", "legitimate", "authority")] == [1, 2, 1]

    # Export: the public tier to anyone, the whole document == the imported one with the authority credential.
    assert json.loads(run("battery", "export", passport_id))["identification"] == document["identification"]
    wallet = city.wallet(BATTERY_AUTHORITY, AUTHORITY, "AUTH-CLI")
    request = httpx.post(f"{city.url}/verifier/requests", json={"credential_type": BATTERY_AUTHORITY,
                                                                "reveal": ["holder_did"]}).json()
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "presentation.json").write_text(wallet.present(request, city.ledger))
    exported = json.loads(run("battery", "export", passport_id, "--tier", "authority", "--request",
                              str(tmp_path / "request.json"), "--presentation", str(tmp_path / "presentation.json")))
    assert exported == document
    refused = CliRunner().invoke(app, ["battery", "export", passport_id, "--tier", "legitimate", "--home", home,
                                       "--node", city.url])
    assert refused.exit_code == 1 and "--presentation" in refused.output
    _anchor_log(run, city, passport_id)
    del document["metadata"]["issueDate"]
    document["identification"]["idDmc"] = 5
    path.write_text(json.dumps(document))
    invalid = CliRunner().invoke(app, ["battery", "import", "--file", str(path), "--as", "maker", "--home", home,
                                       "--node", city.url, "--passphrase-env", "CL_PASS"], env=env)
    assert invalid.exit_code == 1
    assert "$.metadata.issueDate" in invalid.output and "$.identification.idDmc" in invalid.output


def _anchor_log(run, city, passport_id: str) -> None:
    """anchor-log puts the service's verified log head on chain; a second run has nothing new to anchor."""
    anchored = json.loads(run("battery", "anchor-log", passport_id, "--as", "maker", "--passphrase-env", "CL_PASS",
                              "--json"))
    assert anchored["anchored_at"] is not None and anchored["count"] >= 1
    onchain = httpx.get(f"{city.url}/query/batteries/access_log", params={"id": passport_id}).json()["result"]
    assert onchain["head"] == city.node.passports.verify_log(passport_id) == anchored["head"]
    assert onchain["count"] == city.node.passports.get_log_head(passport_id)[0] == anchored["count"]
    again = json.loads(run("battery", "anchor-log", passport_id, "--as", "maker", "--passphrase-env", "CL_PASS",
                           "--json"))
    assert again["anchored_at"] is None and again["head"] == onchain["head"]


# -- SoH reports in batches, and end-of-first-life alerts ------------------------------------------

REPORTING_ID = "6c1b8a52-3f0e-4d5a-9b7c-2e4f6a8b0c1d"


def _device(city, seed: int, kind: str) -> tuple[PrivateKey, str]:
    key = PrivateKey(2, bytes([seed]) * 32)
    message = build_registration(city.node.app.chain_id, kind, "Pack-1", key, city.maker_did, city.maker)
    city.ledger.send([city.maker], [message]).raise_for_error()
    return key, compute_device_did(key.public_key)


@pytest.fixture(scope="module")
def reporting(city):
    """A passport in service whose battery's BMS key the test holds: (BMS key, battery DID)."""
    bms, battery = _device(city, 0x51, "battery")
    _, vehicle = _device(city, 0x52, "vehicle")
    hashes = [bytes([i]) * 32 for i in range(3)]
    for message in (RegisterPassport(city.maker_did, REPORTING_ID, "DMC-REPORTING", battery, *hashes),
                    PlaceOnMarket(city.maker_did, REPORTING_ID), Install(city.maker_did, REPORTING_ID, vehicle)):
        city.ledger.send([city.maker], [message]).raise_for_error()
    return bms, battery


def _report(city, bms, battery, sequence: int, soce: float, passport: str = REPORTING_ID) -> dict:
    report = {"salt": f"{sequence:032x}", "dynamic": {"energy": {"soce": {"value": soce}}, "fullCycles": {"value": 3}}}
    payload = compute_report_payload(city.node.app.chain_id, passport, sequence, compute_report_hash(report))
    return {"passport": passport, "sequence": sequence, "report": report,
            "signature": sign_device_message(bms, battery, payload).hex()}


def _next_sequence(city, book) -> int:
    """The sequence the node expects next: after the chain's report count and the service's last."""
    return max(get_passport(city.node.store, REPORTING_ID).report_count, book.last_seq(REPORTING_ID)) + 1


def _post_reports(city, reports: list) -> httpx.Response:
    return httpx.post(f"{city.url}/passports/reports", json={"reports": reports}, timeout=60)


def test_report_batch_verified_stored_and_committed_in_one_tx(city, reporting):
    bms, battery = reporting
    # The per-report message still works; the batch path goes on after the chain's count.
    first = _report(city, bms, battery, 1, 95.0)
    city.ledger.send([city.maker], [ReportHealth(REPORTING_ID, 1, compute_report_hash(first["report"]),
                                                 bytes.fromhex(first["signature"]))]).raise_for_error()
    reports = [_report(city, bms, battery, seq, soce) for seq, soce in ((2, 91.0), (3, 79.5), (4, 85.0))]
    answer = strict(_post_reports(city, reports), ReportBatchView)
    root = get_report_root(city.node.store, city.node.passport_service, answer["seq"])
    assert (answer["accepted"], root.root.hex(), root.size, root.height) == (3, answer["root"], 3, answer["height"])
    book = ReportBook(city.node.passports)
    assert book.read(REPORTING_ID, 3) == (reports[1]["report"], answer["seq"])
    assert strict(_post_reports(city, [_report(city, bms, battery, 5, 77.0)]), ReportBatchView)["accepted"] == 1
    # The alert: reports 3 and 5 (SOCE at or below 80 %), to the operator only; no value in the answer.
    auth = sign_log_read(city.node.app.chain_id, [city.maker], city.maker_did, REPORTING_ID,
                         city.node.store.last_height())
    alerts = strict(httpx.get(f"{city.url}/passports/{REPORTING_ID}/alerts", params=auth, timeout=30), AlertsView)
    assert [a["sequence"] for a in alerts["alerts"]] == [3, 5] and alerts["threshold_percent"] == 80
    stranger = PrivateKey(1, b"\x78" * 32)
    refused = httpx.get(f"{city.url}/passports/{REPORTING_ID}/alerts", params=sign_log_read(
        city.node.app.chain_id, [stranger], compute_did(stranger.signer(), b""), REPORTING_ID,
        city.node.store.last_height()), timeout=30)
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "reader"


@pytest.mark.parametrize("case,field", [
    ("other_key", "reports[1].signature"), ("replayed", "reports[0].sequence"), ("skipped", "reports[0].sequence"),
    ("no_salt", "reports[0].report.salt"), ("short_salt", "reports[0].report.salt"),
    ("unknown_passport", "reports[0].passport"), ("upper_case_id", "reports[0].passport"),
    ("long_id", "reports[0].passport"), ("sequence_zero", "reports[0].sequence"),
    ("signature_not_hex", "reports[0].signature"), ("empty", "reports"), ("not_a_list", "reports"),
])
def test_invalid_report_batches_are_refused_whole(city, reporting, case, field):
    bms, battery = reporting
    book = ReportBook(city.node.passports)
    if _next_sequence(city, book) == 1:  # something to replay, when this test runs alone
        assert _post_reports(city, [_report(city, bms, battery, 1, 90.0)]).status_code == 200
    last = book.last_seq(REPORTING_ID)
    nxt = _next_sequence(city, book)
    good = _report(city, bms, battery, nxt, 90.0)
    other = PrivateKey(2, b"\x53" * 32)
    reports = {
        "other_key": [good, _report(city, other, battery, nxt + 1, 90.0)],
        "replayed": [_report(city, bms, battery, nxt - 1, 90.0)],
        "skipped": [_report(city, bms, battery, nxt + 1, 90.0)],
        "no_salt": [dict(good, report={"dynamic": {}})],
        "short_salt": [dict(good, report={"salt": "ab"})],
        "unknown_passport": [_report(city, bms, battery, 1, 90.0, passport="00000000-0000-4000-8000-000000000000")],
        "upper_case_id": [dict(good, passport=REPORTING_ID.upper())],
        "long_id": [dict(good, passport="a" * 5000)],
        "sequence_zero": [dict(good, sequence=0)],
        "signature_not_hex": [dict(good, signature="zz")],
        "empty": [],
        "not_a_list": {"x": 1},
    }[case]
    refused = _post_reports(city, reports)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"].startswith(field)
    assert book.last_seq(REPORTING_ID) == last  # nothing stored


def test_cli_battery_waste_alerts_and_verify_log(city, reporting):
    from typer.testing import CliRunner

    from cityledger.cli.main import app
    from cityledger.sdk import Keystore
    from cityledger.sdk.keystore import MIN_SCRYPT_N

    env = {"CL_PASS": "open sesame"}
    home = str(city.tmp_path / "home")
    store = Keystore(city.tmp_path / "home" / "keystore", scrypt_n=MIN_SCRYPT_N)
    if "maker" not in {info.name for info in store.list()}:
        store.import_key("maker", city.maker, env["CL_PASS"])

    def run(*args: str, code: int = 0):
        result = CliRunner().invoke(app, [*args, "--home", home, "--node", city.url], env=env)
        assert result.exit_code == code, result.output
        return result.stdout if code == 0 else result.output

    stages = json.loads(run("battery", "waste", "--json"))["stages"]
    assert stages["in_service"] >= 1
    listed = json.loads(run("battery", "waste", "--stage", "in_service", "--json"))
    assert REPORTING_ID in listed["passports"] and listed["count"] == stages["in_service"]
    assert "stage" in run("battery", "waste", "--stage", "broken", code=1)
    assert "choose one" in run("battery", "waste", "--second-life", "--awaiting-recycling", code=1)
    alerts = json.loads(run("battery", "alerts", REPORTING_ID, "--as", "maker", "--passphrase-env", "CL_PASS",
                            "--json"))
    assert [a["sequence"] for a in alerts["alerts"]] == [seq for seq, _, _ in
                                                         ReportBook(city.node.passports).alerts(REPORTING_ID)]
    verified = json.loads(run("battery", "verify-log", REPORTING_ID, "--as", "maker", "--passphrase-env", "CL_PASS",
                              "--json"))
    assert verified["verified"] is True
    assert verified["anchored_entries"] <= city.node.passports.get_log_head(REPORTING_ID)[0]


def test_declared_recycled_content_against_art_8(city):
    assert city.put(example(), 0).status_code in (200, 409)  # stored by the maker (maybe by a test before)
    with Client(city.url) as client:
        answer = client.get_recycled_content(PASSPORT_ID)
    document = example()
    for element in answer.elements:
        name = {"co": "cobalt", "li": "lithium", "ni": "nickel", "pb": "lead"}[element.element]
        declared = document["materials"]["active"].get(name, {}).get("recycled")
        assert element.declared_percent == declared
        assert [t.per_mille for t in element.targets] == {"co": [160, 260], "li": [60, 120], "ni": [60, 150],
                                                          "pb": [850, 850]}[element.element]
        for target in element.targets:
            assert target.reference.startswith("Reg. (EU) 2023/1542 Art. 8(")
            assert target.met == (None if declared is None else declared * 10 >= target.per_mille)
    missing = httpx.get(f"{city.url}/passports/00000000-0000-4000-8000-000000000000/recycled_content")
    assert missing.status_code == 404
    assert httpx.get(f"{city.url}/passports/not-a-uuid/recycled_content").status_code == 400


def test_large_batch_with_one_bad_signature_is_refused_naming_it(city, reporting):
    bms, battery = reporting
    book = ReportBook(city.node.passports)
    start = _next_sequence(city, book)
    reports = [_report(city, bms, battery, start + i, 90.0) for i in range(70)]
    forged = _report(city, PrivateKey(2, b"\x54" * 32), battery, start + 65, 90.0)
    refused = _post_reports(city, reports[:65] + [forged] + reports[66:])
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("reports[65].signature")
    assert book.last_seq(REPORTING_ID) < start
    assert strict(_post_reports(city, reports), ReportBatchView)["accepted"] == 70
    assert book.last_seq(REPORTING_ID) == start + 69
