"""`cityledger battery simulate` against a live in-process node: passports, devices and daily BMS reports in batches."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from passport_home import passport_home
from test_api_helpers import LiveServer
from cityledger.api.routes.batteries import PassportApi, _export
from cityledger.cli.main import app
from cityledger.modules.batteries import get_report_root
from cityledger.node.runner import Node
from cityledger.offchain.passport.reports import check_dynamic
from cityledger.offchain.passport.store import ReportBook
from cityledger.sdk import Client, Keystore
from cityledger.sdk.keystore import MIN_SCRYPT_N
from cityledger.tools.battery_sim import make_fleet

PASS_ENV = {"CL_TEST_PASS": "open sesame"}
runner = CliRunner()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A live node committing report batches, whose car maker is also battery manufacturer and vehicle maker."""
    home = tmp_path_factory.mktemp("battery-sim") / "home"
    config, maker = passport_home(home)
    Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N).import_key("maker", maker, PASS_ENV["CL_TEST_PASS"])
    node = Node(config)
    with LiveServer(node) as server:
        yield home, node, server


def cli(served, *args: str):
    home, _, server = served
    return runner.invoke(app, ["battery", "simulate", *args, "--home", str(home), "--node", server.url,
                               "--passphrase-env", "CL_TEST_PASS"], env=PASS_ENV)


@pytest.mark.slow
def test_simulate_registers_the_fleet_and_commits_every_daily_batch(served):
    _, node, server = served
    result = cli(served, "--batteries", "5", "--days", "3", "--as", "maker", "--seed", "11", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert (summary["batteries"], summary["reports"], summary["txs"]) == (5, 15, 3)
    assert 0 < summary["soh_min_pct"] <= summary["soh_mean_pct"] <= summary["soh_max_pct"] < 100
    book = ReportBook(node.passports)
    for battery in make_fleet(5, 11):
        passport = Client(server.url).query("batteries", "passport", id=battery.passport)
        assert passport["stage"] == "in_service"
        assert book.last_seq(battery.passport) == 3
        latest = book.latest_committed(battery.passport)
        assert latest is not None and check_dynamic(latest["dynamic"]) == []
        # The public tier never shows the BMS's values.
        public = httpx.get(f"{server.url}/passports/{battery.passport}").json()["document"]
        assert "dynamic" not in public["performance"]
    # One root a day on chain, over that day's five reports (batch 3: every battery's third report).
    roots = [get_report_root(node.store, node.passport_service, seq) for seq in (1, 2, 3)]
    assert all(root is not None for root in roots)
    assert book.pending() is None
    # A legitimate read (what POST /passports/{id}/read serves once the presentation is verified) shows the
    # BMS's newest committed report as performance.dynamic, and is logged.
    api, battery = PassportApi(node, verifier=None), make_fleet(5, 11)[0]
    before = node.passports.get_log_head(battery.passport)[0]
    view = _export(api, battery.passport, "legitimate", "did:city:repairshop-example")
    assert view.document["performance"]["dynamic"] == book.read(battery.passport, 3)[0]["dynamic"]
    assert view.document["performance"]["rated"] == public["performance"]["rated"]
    assert node.passports.get_log_head(battery.passport)[0] == before + 1
    # Bad input is named and changes nothing.
    bad = cli(served, "--batteries", "2", "--days", "1", "--as", "maker", "--start", "2027-13-01")
    assert bad.exit_code != 0 and "--start" in bad.output
    assert get_report_root(node.store, node.passport_service, 4) is None
