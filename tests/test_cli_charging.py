"""`cityledger charging charger add|list` with typer's CliRunner, against a real home's registry."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.core.types import address_to_str
from cityledger.node.charging import open_registry, registry_path
from cityledger.node.home import init_home, load_key

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    init_home(folder, chain_id="charging-cli-1", issuers=False)
    return folder


def test_charger_add_prints_the_password_once_and_keeps_only_its_hash(home):
    owner = address_to_str(load_key(home / "keys" / "grid-operator.json").address())
    result = runner.invoke(app, ["charging", "charger", "add", "CP-0042", "--owner", owner,
                                 "--home", str(home), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["charger_id"] == "CP-0042" and answer["owner"] == owner
    assert registry_path(home).exists() and answer["password"] not in registry_path(home).read_text()
    registry = open_registry(home)
    assert registry.is_valid_login("CP-0042", answer["password"])
    assert not registry.is_valid_login("CP-0042", answer["password"] + "x")

    listed = runner.invoke(app, ["charging", "charger", "list", "--home", str(home), "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [{"charger_id": "CP-0042", "owner": owner}]
    assert answer["password"] not in listed.output


def test_charger_add_takes_a_key_file_as_owner_and_prints_a_table(home):
    key_file = home / "keys" / "car-maker.json"
    result = runner.invoke(app, ["charging", "charger", "add", "CP-1", "--owner", str(key_file), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "OCPP basic-auth password:" in result.output
    password = result.output.split("OCPP basic-auth password:")[1].split()[0]
    assert open_registry(home).is_valid_login("CP-1", password)
    listed = runner.invoke(app, ["charging", "charger", "list", "--home", str(home)])
    assert "CP-1" in listed.output and address_to_str(load_key(key_file).address()) in listed.output


@pytest.mark.parametrize("args, message", [
    (["bad id!", "--owner", "keys/car-maker.json"], "charger_id"),
    (["CP-1", "--owner", "nobody-known"], "--owner"),
    (["CP-1", "--owner", "city1notanaddress"], "--owner"),
])
def test_charger_add_refuses_bad_input_and_changes_nothing(home, args, message):
    args = [a.replace("keys/", str(home / "keys") + "/") for a in args]
    result = runner.invoke(app, ["charging", "charger", "add", *args, "--home", str(home)])
    assert result.exit_code == 1
    assert message in result.output
    assert open_registry(home).chargers() == []


def test_charger_commands_need_an_initialised_home(tmp_path):
    result = runner.invoke(app, ["charging", "charger", "list", "--home", str(tmp_path / "none")])
    assert result.exit_code == 1 and "config.toml" in result.output


@pytest.mark.slow
def test_bench_charging_runs_complete_paid_sessions_over_websockets_and_a_solo_node():
    result = runner.invoke(app, ["bench", "charging", "--chargers", "2", "--sessions", "3", "--meter-values", "2",
                                 "--baseline-sessions", "2", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["receipts"] == 3 and figures["vouchers_refused"] == 0
    assert figures["store"] == "normal"  # the CSMS keeps its state in SQLite, as a node's does
    assert figures["vouchers"] == 3 * (2 + 2)  # Started, 2 Updated, Ended: one voucher each
    assert figures["sessions_per_s"] > 0 and figures["ocpp_msgs_per_s"] > 0 and figures["p99_voucher_roundtrip_ms"] > 0
    assert figures["baseline_sessions_per_s"] > 0 and figures["ratio_to_baseline"] > 0
    # Counted in the node's blocks: one channel opened per vehicle, each redeemed at least once, nothing else.
    onchain = figures["onchain"]
    assert onchain["opens"] == 2 and onchain["redeems"] >= 2 and onchain["closes"] == onchain["other"] == 0
    assert figures["onchain_txs_per_session"] == (onchain["opens"] + onchain["redeems"]) / 5
    # The run itself fails unless the operator's balance grew by exactly the receipts' sum.
    assert figures["billed_micro"] > 0


def test_bench_charging_refuses_bad_arguments():
    result = runner.invoke(app, ["bench", "charging", "--chargers", "4", "--sessions", "2"])
    assert result.exit_code == 2 and "--sessions" in result.output
