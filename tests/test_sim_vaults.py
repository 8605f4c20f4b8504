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
from cityledger.node.home import init_home, load_config, load_key, set_section  # noqa: E402
from cityledger.node.runner import Node  # noqa: E402
from cityledger.offchain.telemetry.broker import find_binary  # noqa: E402
from cityledger.sdk import Keystore  # noqa: E402
from cityledger.sdk.keystore import MIN_SCRYPT_N  # noqa: E402

from test_api_helpers import LiveServer, free_port  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

PASS_ENV = {"CL_SIM_PASS": "sim pass"}


def telemetry_home(home, broker_port: int = 0) -> None:
    """An `init --telemetry` home (its hosted transport office, car maker, gateway and vault service) with a
    1 s anchoring interval, the sponsor and the office in the keystore."""
    init_home(home, members=2, port=free_port(), telemetry=True)
    config = home / "config.toml"
    config.write_text(set_section(config.read_text(), "telemetry", {"interval_s": 1, "port": broker_port}))
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
    assert scanned["api_bytes"] > 0 and scanned["store_bytes"] > scanned["api_bytes"]  # the node's files too


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
