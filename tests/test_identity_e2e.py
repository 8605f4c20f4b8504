"""Identity end to end on a real node process (`cityledger up`), over HTTP only.

The ID office hosted by the node publishes Resident IDs (a real credential definition: seconds),
pre-authorises a resident's credential; the resident's wallet redeems it; a verifier asks for
age >= 18, residence >= 1 year, the district and non-revocation, and the presentation verifies;
the office revokes, and the next presentation fails. Then the same flow with the `cityledger`
command, and a vehicle's life (register, bind, transfer, signed messages) through the CLI.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from test_api_helpers import NodeProcess, free_port
from test_identity_fixtures import ALICE, TODAY
from cityledger.cli.main import app
from cityledger.node.home import init_home
from cityledger.offchain.identity import RESIDENT_ID, VEHICLE_REGISTRATION
from cityledger.sdk import IdentityClient

pytestmark = pytest.mark.slow

ENV = {"CL_WALLET_PASS": "correct horse battery staple"}
RESIDENT = dict(ALICE, name="Ada Lindqvist", district="Hafenquartier", id_number="E2E-0001")


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A node process whose home has the two offices; both publish their credential type once."""
    root = tmp_path_factory.mktemp("e2e")
    port = free_port()
    home = root / "home"
    init_home(home, chain_id="e2e-city-1", port=port)
    node = NodeProcess(home, port=port).start()
    try:
        office = IdentityClient(node.url, token=(home / "issuers/id-office/token").read_text().strip())
        transport = IdentityClient(node.url, token=(home / "issuers/transport-office/token").read_text().strip())
        dids = {item["folder"]: item["did"] for item in office.list_issuers()}
        office.publish(dids["id-office"], RESIDENT_ID)
        transport.publish(dids["transport-office"], VEHICLE_REGISTRATION)
        yield node, home, dids, office
    finally:
        assert node.stop() == 0, node.log.read_text()[-2000:]


def test_rest_issue_present_verify_revoke(city, tmp_path):
    node, _, dids, office = city
    resident = IdentityClient(node.url)  # no token: the resident's and the verifier's side
    offer = office.create_offer(dids["id-office"], RESIDENT_ID, RESIDENT, RESIDENT["id_number"])
    wallet = resident.open_wallet(tmp_path / "ada.wallet", "pw", create=True, tails_cache=tmp_path / "tails")
    local_id = resident.obtain_credential(wallet, offer)
    assert wallet.credentials()[local_id]["attributes"]["district"] == "Hafenquartier"

    request = resident.resident_request(TODAY, reveal=("district",), min_age=18, min_residence_years=1)
    assert set(request["requested_predicates"]) == {"pred_birth_date", "pred_resident_since"}
    assert request["non_revoked"]["to"] == resident.status().height
    presentation = resident.present(wallet, request)
    for secret in (RESIDENT["name"], str(RESIDENT["birth_date"]), RESIDENT["id_number"]):
        assert secret not in presentation
    verdict = resident.verify(request, presentation)
    assert verdict["verified"], verdict
    assert verdict["revealed"] == {"attr_district": "Hafenquartier"}

    revoked = office.revoke(dids["id-office"], [RESIDENT["id_number"]])
    assert revoked["height"] > request["non_revoked"]["to"]
    again = resident.resident_request(TODAY)
    verdict = resident.verify(again, resident.present(wallet, again))
    assert not verdict["verified"] and "does not verify" in verdict["reason"]


def cli(home, node, *args: str, ok: bool = True):
    """Run `cityledger *args` against the node (keys and a device's signing need no node)."""
    local = args[0] == "keys" or args[:2] == ("device", "sign")
    where = ["--home", str(home)] + ([] if local else ["--node", node.url])
    result = CliRunner().invoke(app, [*args, *where], env=ENV)
    if ok:
        assert result.exit_code == 0, (args, result.output)
    return result


def test_cli_issue_present_verify_revoke(city, tmp_path):
    node, home, dids, _ = city
    offer = tmp_path / "offer.json"
    values = dict(RESIDENT, id_number="E2E-CLI-1")
    cli(home, node, "issuer", "issue", "--type", RESIDENT_ID, "--reference", "E2E-CLI-1", "--out", str(offer),
        *[arg for name, value in values.items() for arg in ("--value", f"{name}={value}")])
    assert json.loads(offer.read_text())["issuer"] == dids["id-office"]
    stored = cli(home, node, "credential", "request", "--offer", str(offer), "--wallet", "ada",
                 "--passphrase-env", "CL_WALLET_PASS", "--json")
    assert json.loads(stored.stdout)["type"] == RESIDENT_ID
    held = json.loads(cli(home, node, "credential", "list", "--wallet", "ada", "--passphrase-env", "CL_WALLET_PASS",
                          "--json").stdout)
    assert [item["attributes"]["id_number"] for item in held.values()] == ["E2E-CLI-1"]

    def check(expect_ok: bool) -> dict:
        request, presentation = tmp_path / "request.json", tmp_path / "presentation.json"
        cli(home, node, "verifier", "request", "--resident-check", "--today", str(TODAY), "--reveal", "district",
            "--out", str(request))
        cli(home, node, "credential", "present", "--request", str(request), "--wallet", "ada", "--out",
            str(presentation), "--passphrase-env", "CL_WALLET_PASS")
        result = cli(home, node, "verifier", "verify", "--request", str(request), "--presentation", str(presentation),
                     "--json", ok=expect_ok)
        assert result.exit_code == (0 if expect_ok else 1), result.output
        return json.loads(result.stdout)

    assert check(True)["revealed"] == {"attr_district": "Hafenquartier"}
    revoked = cli(home, node, "issuer", "revoke", "E2E-CLI-1", "--json")
    assert json.loads(revoked.stdout)["revoked"] == 1
    assert "does not verify" in check(False)["reason"]
    unknown = cli(home, node, "issuer", "revoke", "NOBODY", ok=False)
    assert unknown.exit_code == 1 and "issuer/refused" in unknown.output


def test_cli_dids_and_a_vehicles_life(city, tmp_path):
    node, home, dids, _ = city
    wallet_args = ("--passphrase-env", "CL_WALLET_PASS")
    resolved = json.loads(cli(home, node, "did", "resolve", dids["id-office"], "--json").stdout)
    assert resolved["didDocument"]["service"][0]["type"] == "AnonCredsTailsServer"
    assert cli(home, node, "did", "resolve", "did:city:" + "1" * 22, ok=False).exit_code == 1

    # An organisation DID: create, rotate (the old key can no longer act), deactivate.
    for name, extra in (("org", ()), ("org2", ()), ("maker", ("--import-file", str(home / "keys/car-maker.json"))),
                        ("car", ("--scheme", "p256"))):
        cli(home, node, "keys", "add", name, *extra, *wallet_args)
    did = json.loads(cli(home, node, "did", "create", "--key", "org", *wallet_args, "--json").stdout)["did"]
    cli(home, node, "did", "rotate", did, "--key", "org", "--new-key", "org2", *wallet_args)
    stale = cli(home, node, "did", "deactivate", did, "--key", "org", *wallet_args, ok=False)
    assert stale.exit_code == 1 and "identity/5" in stale.output
    cli(home, node, "did", "deactivate", did, "--key", "org2", *wallet_args)
    assert json.loads(cli(home, node, "did", "resolve", did, "--json").stdout)["didDocumentMetadata"]["deactivated"]

    # A vehicle: the car maker registers it, the transport office registers it to a resident's
    # pseudonymous account, the resident binds it, sells it to another resident, it signs messages.
    car = json.loads(cli(home, node, "device", "register", "--model", "CityCar-e1", "--device-key", "car",
                         "--manufacturer-key", "maker", *wallet_args, "--json").stdout)["did"]
    owners = {}
    for index, wallet in enumerate(("seller", "buyer")):
        owners[wallet] = cli(home, node, "credential", "account", "--wallet", wallet, *wallet_args).stdout.strip()
        registration = tmp_path / f"registration-{wallet}.json"
        cli(home, node, "issuer", "issue", "--issuer", "transport-office", "--type", VEHICLE_REGISTRATION,
            "--value", f"device_did={car}", "--value", f"owner_account={owners[wallet]}",
            "--value", f"registered_on={TODAY}", "--reference", f"REG-{index}", "--out", str(registration))
        cli(home, node, "credential", "request", "--offer", str(registration), "--wallet", wallet, *wallet_args)
    cli(home, node, "device", "bind", car, "--wallet", "seller", *wallet_args)
    assert json.loads(cli(home, node, "device", "show", car, "--json").stdout)["owner"] == owners["seller"]
    cli(home, node, "device", "transfer", car, "--to", owners["buyer"], "--wallet", "seller", *wallet_args)
    cli(home, node, "device", "accept", car, "--wallet", "buyer", *wallet_args)
    assert json.loads(cli(home, node, "device", "show", car, "--json").stdout)["owner"] == owners["buyer"]

    signature = cli(home, node, "device", "sign", car, "--device-key", "car", "--payload", "abcd",
                    *wallet_args).stdout.strip()
    assert cli(home, node, "device", "verify", car, "--payload", "abcd", "--signature", signature).exit_code == 0
    forged = cli(home, node, "device", "verify", car, "--payload", "abce", "--signature", signature, ok=False)
    assert forged.exit_code == 1 and "invalid" in forged.output
