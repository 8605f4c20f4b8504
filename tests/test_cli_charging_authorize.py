"""`cityledger charging authorize` end to end: a node process whose CSMS is enabled, a vehicle made with
the CLI (registered by its maker, registered to a pseudonymous owner, bound), its owner's spending
policy, then the vehicle authorises itself: a channel is opened from its own account on the first
run and reused on the next, the idToken stays the same, and a CSMS of another operator is refused.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from test_api_helpers import NodeProcess, free_port
from test_identity_fixtures import TODAY
from cityledger.cli.common import keystore_folder
from cityledger.cli.main import app
from cityledger.core.types import address_to_str
from cityledger.modules.devices import compute_device_did
from cityledger.node.charging import store_path
from cityledger.node.home import init_home, load_key
from cityledger.offchain.identity import VEHICLE_REGISTRATION
from cityledger.sdk import IdentityClient, Keystore

pytestmark = pytest.mark.slow
ENV = {"CL_WALLET_PASS": "correct horse battery staple"}
PASS = ("--passphrase-env", "CL_WALLET_PASS")


def cli(home, node, *args: str, ok: bool = True):
    local = args[0] == "keys"
    where = ["--home", str(home)] + ([] if local else ["--node", node.url])
    result = CliRunner().invoke(app, [*args, *where], env=ENV)
    if ok:
        assert result.exit_code == 0, (args, result.output)
    return result


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    root = tmp_path_factory.mktemp("charging-e2e")
    port, csms_port = free_port(), free_port()
    home = root / "home"
    init_home(home, chain_id="charging-e2e-1", port=port)
    config = home / "config.toml"
    head = config.read_text().split("[charging]")[0]
    config.write_text(head + f"[charging]\nenabled = true\nport = {csms_port}\n")
    node = NodeProcess(home, port=port).start()
    try:
        token = (home / "issuers/transport-office/token").read_text().strip()
        transport = IdentityClient(node.url, token=token)
        dids = {item["folder"]: item["did"] for item in transport.list_issuers()}
        transport.publish(dids["transport-office"], VEHICLE_REGISTRATION)
        yield node, home, root
    finally:
        assert node.stop() == 0, node.log.read_text()[-2000:]


def test_vehicle_authorises_with_the_cli_opening_then_reusing_its_channel(city):
    node, home, root = city
    operator = address_to_str(load_key(home / "node_key.json").address())
    cli(home, node, "keys", "add", "maker", "--import-file", str(home / "keys/car-maker.json"), *PASS)
    cli(home, node, "keys", "add", "car", "--scheme", "p256", *PASS)
    car = json.loads(cli(home, node, "device", "register", "--model", "CityCar-e1", "--device-key", "car",
                         "--manufacturer-key", "maker", *PASS, "--json").stdout)["did"]
    owner = cli(home, node, "credential", "account", "--wallet", "car", *PASS).stdout.strip()
    offer = root / "registration.json"
    cli(home, node, "issuer", "issue", "--issuer", "transport-office", "--type", VEHICLE_REGISTRATION,
        "--value", f"device_did={car}", "--value", f"owner_account={owner}", "--value", f"registered_on={TODAY}",
        "--reference", "REG-CAR-1", "--out", str(offer))
    cli(home, node, "credential", "request", "--offer", str(offer), "--wallet", "car", *PASS)
    cli(home, node, "device", "bind", car, "--wallet", "car", *PASS)
    device_account = Keystore(keystore_folder(home)).info("car").address
    assert compute_device_did(Keystore(keystore_folder(home)).load("car", ENV["CL_WALLET_PASS"]).public_key) == car
    cli(home, node, "tx", "send", "--from", "maker", "--to", device_account, "--amount", "50000000", *PASS)
    cli(home, node, "payments", "policy", "set", car, "--daily-cap", "40000000", "--counterparty-cap", "40000000",
        "--expiry-height", "100000", "--address", operator, "--wallet", "car", *PASS)

    authorize = ("charging", "authorize", "--vehicle", "car", "--operator", operator, "--wallet", "car", *PASS)
    missing = cli(home, node, *authorize, ok=False)  # no channel yet, and no --deposit to open one
    assert missing.exit_code == 1 and "channel_id" in missing.output
    first = json.loads(cli(home, node, *authorize, "--deposit", "5000000", "--json").stdout)
    assert first["deposit"] == 5_000_000 and len(first["id_token"]) <= 36
    again = json.loads(cli(home, node, *authorize, "--charger", "CP-404", "--json").stdout)
    assert (again["id_token"], again["channel_id"]) == (first["id_token"], first["channel_id"])
    assert again["remote_start"].startswith("Rejected: charger_id")  # granted; that charger is not connected
    channel = json.loads(cli(home, node, "payments", "channel", "show", str(first["channel_id"]), "--json").stdout)
    assert channel["payee"] == operator and channel["payer"] == device_account
    assert car not in first["id_token"] and store_path(home).exists()

    stranger = address_to_str(load_key(home / "keys/car-maker.json").address())
    wrong = cli(home, node, "charging", "authorize", "--vehicle", "car", "--operator", stranger, "--wallet", "car",
                *PASS, ok=False)
    assert wrong.exit_code == 1 and "operator" in wrong.output
