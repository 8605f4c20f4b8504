"""`cityledger rewards …` through typer's CliRunner against an in-process node: a sponsor's
programme, enrollment with an office ticket, a trip scored from samples, proven and claimed, a
replay refused; options refused with their name."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.identity import compute_did
from cityledger.node.home import init_home, load_config, load_key
from cityledger.node.runner import Node
from cityledger.offchain.mobility.rewards import close_trip, issue_enrollment
from cityledger.sdk import Keystore
from cityledger.sdk.keystore import MIN_SCRYPT_N
from cityledger.sdk.mobility import ticket_to_json, trip_to_json
from cityledger.tools.bench_rewards import _genesis

from test_api_helpers import LiveServer, free_port

runner = CliRunner()
PASS_ENV = {"CL_TEST_PASS": "open sesame"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A live node whose genesis accredits a ticket office; keystore: 'sponsor' (funded) and 'driver'."""
    home = tmp_path_factory.mktemp("rewards-cli") / "home"
    init_home(home, members=1, port=free_port(), issuers=False)
    office = PrivateKey(1, b"\x61" * 32)
    chain_id, sponsor = _genesis(home, office)
    config = load_config(home)
    config.solo.block_interval_ms = 20
    driver = PrivateKey(1, b"\x62" * 32)
    keystore = Keystore(home / "keystore", scrypt_n=MIN_SCRYPT_N)
    keystore.import_key("sponsor", sponsor, PASS_ENV["CL_TEST_PASS"])
    keystore.import_key("driver", driver, PASS_ENV["CL_TEST_PASS"])
    with LiveServer(Node(config)) as server:
        yield {"home": home, "url": server.url, "office": office, "chain_id": chain_id, "driver": driver}


def cli(served, *args: str):
    return runner.invoke(app, [*args, "--home", str(served["home"]), "--node", served["url"], "--passphrase-env",
                               "CL_TEST_PASS"], env=PASS_ENV)


def read(served, *args: str):
    """A read-only command: no key, so no passphrase option."""
    return runner.invoke(app, [*args, "--home", str(served["home"]), "--node", served["url"]])


def read_json(served, *args: str) -> dict:
    result = read(served, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ok_json(served, *args: str) -> dict:
    result = cli(served, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_programme_enroll_score_claim(served, tmp_path):
    office_did = compute_did(served["office"].signer(), b"")
    created = ok_json(served, "rewards", "programme", "create", "--budget", "5000", "--min-score", "60",
                      "--reward-per-trip", "100", "--reward-per-km", "10", "--cap-per-trip", "400",
                      "--cap-per-enrollee", "1000", "--period-blocks", "1000000", "--expiry-height", "100000",
                      "--issuer", office_did, "--from", "sponsor")
    assert created["programme_id"] == 1
    ticket = issue_enrollment(served["office"], b"s" * 32, served["chain_id"], 1, 0, "car-1",
                              PrivateKey(1, b"\x63" * 32).public_key, served["driver"].address())
    (tmp_path / "ticket.json").write_text(json.dumps(ticket_to_json(ticket)))
    ok_json(served, "rewards", "enroll", "--ticket", str(tmp_path / "ticket.json"), "--from", "driver")
    samples = [[13_900, 13_900, 0, 43_200 + i] for i in range(1_800)]  # 30 min at 50 km/h, gently
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    report = json.loads(runner.invoke(app, ["rewards", "score", "--samples", str(tmp_path / "samples.json"),
                                            "--json"]).stdout)
    assert (report["score"], report["distance_km"]) == (100.0, 25)
    trip = close_trip(PrivateKey(1, b"\x63" * 32), served["chain_id"], 1, report["inputs"])
    (tmp_path / "trip.json").write_text(json.dumps(trip_to_json(trip)))
    # First only asked: what the chain would pay, with nothing signed (no passphrase) or sent.
    would = read_json(served, "rewards", "claim", "--check", "--trip", str(tmp_path / "trip.json"), "--work-dir",
                      str(tmp_path / "prover"), "--from", "driver")
    assert (would["score"], would["distance_km"], would["reward"], would["period"]) == (100, 25, 350, 0)
    assert would["account"] == address_to_str(served["driver"].address())
    assert read_json(served, "rewards", "programme", "show", "1")["claims"] == 0  # the check paid nothing
    paid = ok_json(served, "rewards", "claim", "--trip", str(tmp_path / "trip.json"), "--work-dir",
                   str(tmp_path / "prover"), "--from", "driver")
    reward = next(e for e in paid["events"] if e["type"] == "mobility.claim_paid")["attributes"]
    assert (reward["score"], reward["distance_km"], reward["reward"]) == ("100", "25", "350")
    shown = json.loads(runner.invoke(app, ["rewards", "programme", "show", "1", "--json", "--node",
                                           served["url"]]).stdout)
    assert (shown["remaining"], shown["claims"]) == (5000 - 350, 1)
    listed = read_json(served, "rewards", "programme", "list")
    assert (listed["count"], [p["programme_id"] for p in listed["items"]], listed["next"]) == (1, [1], None)
    driver = served["driver"].address()
    enrolled = read_json(served, "rewards", "enrollment", "1", address_to_str(driver))
    assert (enrolled["paid"], enrolled["trips"], enrolled["period"]) == (350, 1, 0)
    claimed = read_json(served, "rewards", "paid", "1", trip.commitment.hex())
    assert (claimed["score"], claimed["distance_km"], claimed["reward"]) == (100, 25, 350)
    assert set(claimed) == {"programme_id", "trip_id", "commitment", "score", "distance_km", "reward", "height"}
    again = cli(served, "rewards", "claim", "--trip", str(tmp_path / "trip.json"), "--work-dir",
                str(tmp_path / "prover"), "--from", "driver")
    assert again.exit_code == 1 and "already paid" in again.output, again.output
    checked = read(served, "rewards", "claim", "--check", "--trip", str(tmp_path / "trip.json"), "--work-dir",
                   str(tmp_path / "prover"), "--from", "driver")
    assert checked.exit_code == 1 and "already paid" in checked.output, checked.output
    unknown = read(served, "rewards", "claim", "--check", "--trip", str(tmp_path / "trip.json"), "--work-dir",
                   str(tmp_path / "prover"), "--from", "nobody")
    assert unknown.exit_code == 1 and "--from" in unknown.output, unknown.output


def test_invalid_options_are_named(served, tmp_path):
    office_did = compute_did(served["office"].signer(), b"")
    result = cli(served, "rewards", "programme", "create", "--budget", "5", "--min-score", "60", "--cap-per-trip",
                 "4", "--cap-per-enrollee", "9", "--period-blocks", "100", "--expiry-height", "900",
                 "--issuer", office_did, "--from", "sponsor")
    assert result.exit_code == 1 and "--reward-per-trip" in result.output, result.output
    (tmp_path / "bad.json").write_text(json.dumps({"programme_id": 1}))
    result = cli(served, "rewards", "enroll", "--ticket", str(tmp_path / "bad.json"), "--from", "driver")
    assert result.exit_code == 1 and "--ticket" in result.output, result.output
    (tmp_path / "rows.json").write_text(json.dumps([[1, 2, 3]]))
    result = runner.invoke(app, ["rewards", "score", "--samples", str(tmp_path / "rows.json")])
    assert result.exit_code == 1 and "--samples" in result.output, result.output
    for args, named in ((("paid", "1", "zz" * 32), "commitment"), (("paid", "99", "00" * 32), "programme"),
                        (("enrollment", "1", "city12"), "account")):
        result = read(served, "rewards", *args)
        assert result.exit_code == 1 and named in result.output, (args, result.output)

