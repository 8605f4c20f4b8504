"""`cityledger sim traffic --node` with connected cars: a small fleet registered as devices by the car maker,
bound with the hosted transport office's registration credentials, publishes each trip sealed through the
node's Mosquitto into its owners' vaults; each owner enrolls at the office's EnrollmentDesk with its car's
credential, reads its trips back, scores them from what it read (the same features its car committed
to), and claims; the ledger scan (AnonCreds proofs on chain now) finds none of the simulated values."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("libsumo")

from typer.testing import CliRunner  # noqa: E402

from cityledger.cli.main import app  # noqa: E402
from cityledger.core.keys import PrivateKey  # noqa: E402
from cityledger.modules.consent.messages import GATEWAY_TYPE, VAULT_SERVICE_TYPE  # noqa: E402
from cityledger.modules.identity import compute_did  # noqa: E402
from cityledger.node.home import init_home, load_config, load_key, write_key_file  # noqa: E402
from cityledger.node.runner import Node  # noqa: E402
from cityledger.offchain.telemetry.broker import find_binary  # noqa: E402
from cityledger.sdk import Keystore  # noqa: E402
from cityledger.sdk.keystore import MIN_SCRYPT_N  # noqa: E402
from cityledger.tools.bench_rewards import _office_entry  # noqa: E402

from test_api_helpers import LiveServer, free_port  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

PASS_ENV = {"CL_SIM_PASS": "sim pass"}


def telemetry_home(home, broker_port: int = 0) -> None:
    """An `init` home (its hosted transport office and car maker) with [telemetry] enabled, the gateway's and
    the vault service's DIDs accredited in the genesis, the sponsor and the office in the keystore."""
    init_home(home, members=2, port=free_port())
    offices = {"gateway": PrivateKey(1, b"\x81" * 32), "vault-service": PrivateKey(1, b"\x82" * 32)}
    genesis = json.loads((home / "genesis.json").read_text())
    for (name, key), accreditation in zip(offices.items(), (GATEWAY_TYPE, VAULT_SERVICE_TYPE)):
        write_key_file(home / "keys" / f"{name}.json", key, name)
        genesis["app_state"]["identity"]["dids"].append(dict(_office_entry(key), accreditations=[accreditation]))
    (home / "genesis.json").write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")
    text = (home / "config.toml").read_text()
    head, tail = text.split("[telemetry]\n", 1)
    dids = {name: compute_did(key.signer(), b"") for name, key in offices.items()}
    (home / "config.toml").write_text(
        head + f"[telemetry]\nenabled = true\ninterval_s = 1\nport = {broker_port}\n"
        f'gateway_did = "{dids["gateway"]}"\ngateway_key = "keys/gateway.json"\n'
        f'vault_service_did = "{dids["vault-service"]}"\nvault_service_key = "keys/vault-service.json"\n'
        + tail[tail.index("\n["):])
    keystore = Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N)
    keystore.import_key("sponsor", load_key(home / "keys" / "city-government.json"), PASS_ENV["CL_SIM_PASS"])
    keystore.import_key("office", load_key(home / "issuers" / "transport-office" / "key.json"),
                        PASS_ENV["CL_SIM_PASS"])


def test_cars_publish_into_their_owners_vaults_and_owners_score_what_they_read_back(tmp_path):
    home = tmp_path / "home"
    telemetry_home(home)
    config = load_config(home)
    config.solo.block_interval_ms = 50
    with LiveServer(Node(config)) as server:
        done = CliRunner().invoke(app, ["sim", "traffic", "--vehicles", "4", "--hours", "0.15", "--seed", "4",
                                        "--node", server.url, "--sponsor", "sponsor", "--office", "office",
                                        "--home", str(home), "--passphrase-env", "CL_SIM_PASS", "--json"],
                                  env=PASS_ENV)
    assert done.exit_code == 0, done.output
    result = json.loads(done.output[done.output.index("{"):])
    vaults = result["vaults"]
    trips = sum(row["trips"] for row in result["classes"].values())
    assert vaults["vehicles"] == 4 and trips > 0 and vaults["windows_published"] >= trips
    # every sample each car published came back to its owner, and the owner's features are the committed ones
    assert vaults["samples_read_back"] == vaults["samples_published"] > 0
    assert vaults["trips_read_back"] == vaults["trips_matching_commitment"] == trips
    rewards = result["rewards"]
    assert rewards["budget_held"] and rewards["balances_match"] and rewards["claims_paid"] > 0
    assert rewards["enrollment"] == "desk"  # each owner presented its car's registration at the office's desk
    scanned = result["privacy_scan"]
    assert scanned["forms"] > 1_000 and scanned["found"] == 0, scanned


def test_without_telemetry_the_cli_names_the_setting_and_no_vaults_skips_it(tmp_path):
    home = tmp_path / "home"
    init_home(home, members=2, port=free_port())
    keystore = Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N)
    for name in ("sponsor", "office"):
        keystore.import_key(name, PrivateKey.generate(), PASS_ENV["CL_SIM_PASS"])
    args = ["sim", "traffic", "--vehicles", "2", "--hours", "0.01", "--node", "http://127.0.0.1:9", "--sponsor",
            "sponsor", "--office", "office", "--home", str(home), "--passphrase-env", "CL_SIM_PASS"]
    refused = CliRunner().invoke(app, args, env=PASS_ENV)
    assert refused.exit_code != 0 and "telemetry.enabled" in refused.output and "--no-vaults" in refused.output
    skipped = CliRunner().invoke(app, [*args, "--no-vaults"], env=PASS_ENV)
    assert skipped.exit_code != 0 and "--node" in skipped.output  # it went on to the (unreachable) node
