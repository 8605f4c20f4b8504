"""The `cityledger` command: typer's CliRunner in-process, and the console entry point as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.sdk import Keystore
from cityledger.sdk.keystore import MIN_SCRYPT_N

from test_api_helpers import SRC, LiveServer, make_node

runner = CliRunner()
PASS_ENV = {"CL_TEST_PASS": "open sesame"}


def run(*args: str, env: dict | None = None):
    result = runner.invoke(app, list(args), env=env)
    return result


def test_init_writes_a_home_and_refuses_to_overwrite(tmp_path):
    home = tmp_path / "h"
    result = run("init", "--home", str(home), "--chain-id", "test-city-7", "--port", "9999", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["chain_id"] == "test-city-7" and len(summary["members"]) == 5
    assert (home / "genesis.json").exists() and 'port = 9999' in (home / "config.toml").read_text()
    again = run("init", "--home", str(home))
    assert again.exit_code == 1 and "--force" in again.output
    assert run("init", "--home", str(home), "--force").exit_code == 0


def test_init_with_telemetry_accredits_the_gateway_and_vault_service_and_enables_them(tmp_path):
    from cityledger.modules.identity import compute_did
    from cityledger.node.home import load_config, load_key

    home = tmp_path / "h"
    assert run("init", "--home", str(home), "--telemetry", "--json").exit_code == 0
    telemetry = load_config(home).telemetry
    assert telemetry.enabled and telemetry.port == 0
    assert telemetry.gateways == max(1, min(os.cpu_count() or 1, 32))  # one gateway process per core
    accredited = {}
    for entry in json.loads((home / "genesis.json").read_text())["app_state"]["identity"]["dids"]:
        key = entry["controller"]["keys"][0]["key"]
        accredited[key] = entry["accreditations"]
    for did, key_file, accreditation in ((telemetry.gateway_did, telemetry.gateway_key, "telemetry-gateway"),
                                         (telemetry.vault_service_did, telemetry.vault_service_key, "vault-service")):
        key = load_key(home / key_file)
        assert did == compute_did(key.signer(), b"") and accredited[key.public_key.key.hex()] == [accreditation]
    assert run("init", "--home", str(tmp_path / "plain")).exit_code == 0
    assert not load_config(tmp_path / "plain").telemetry.enabled


def test_home_comes_from_the_environment(tmp_path):
    result = run("init", "--json", env={"CITYLEDGER_HOME": str(tmp_path / "envhome")})
    assert result.exit_code == 0 and (tmp_path / "envhome" / "config.toml").exists()


def test_keys_add_list_show(tmp_path):
    home = str(tmp_path / "h")
    added = run("keys", "add", "alice", "--home", home, "--passphrase-env", "CL_TEST_PASS", "--json", env=PASS_ENV)
    assert added.exit_code == 0, added.output
    alice = json.loads(added.stdout)
    assert alice["name"] == "alice" and alice["address"].startswith("city")
    prompted = runner.invoke(app, ["keys", "add", "bob", "--home", home, "--scheme", "p256"], input="pw\npw\n")
    assert prompted.exit_code == 0, prompted.output
    listed = json.loads(run("keys", "list", "--home", home, "--json").stdout)
    assert [(k["name"], k["scheme"]) for k in listed] == [("alice", "ed25519"), ("bob", "p256")]
    shown = run("keys", "show", "alice", "--home", home, "--json")
    assert json.loads(shown.stdout) == alice
    assert "alice" in run("keys", "list", "--home", home).stdout
    duplicate = run("keys", "add", "alice", "--home", home, "--passphrase-env", "CL_TEST_PASS", env=PASS_ENV)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    missing_env = run("keys", "add", "carol", "--home", home, "--passphrase-env", "CL_NOT_SET_ANYWHERE")
    assert missing_env.exit_code == 1 and "CL_NOT_SET_ANYWHERE" in missing_env.output
    assert run("keys", "show", "nobody", "--home", home).exit_code == 1


@pytest.fixture
def served(tmp_path):
    """A live node, and a keystore in its home holding the funded 'gov' key (cheap scrypt for speed)."""
    tn = make_node(tmp_path)
    Keystore(tn.home / "keystore", scrypt_n=MIN_SCRYPT_N).import_key("gov", tn.alice, PASS_ENV["CL_TEST_PASS"])
    with LiveServer(tn.node) as server:
        yield tn, server


def test_tx_send_and_queries(served):
    tn, server = served
    common = ["--home", str(tn.home), "--node", server.url]
    dest = "city" + "ab" * 20
    sent = run("tx", "send", "--from", "gov", "--to", dest, "--amount", "1500000", "--passphrase-env",
               "CL_TEST_PASS", "--json", *common, env=PASS_ENV)
    assert sent.exit_code == 0, sent.output
    result = json.loads(sent.stdout)
    assert result["status"] == "committed" and result["result"]["code"] == 0

    account = json.loads(run("query", "account", dest, "--json", *common).stdout)
    assert account["balance"] == 1_500_000
    by_name = json.loads(run("query", "account", "gov", "--json", *common).stdout)
    assert by_name["address"] == "city" + tn.alice.address().hex() and by_name["nonce"] == 1
    tx = json.loads(run("query", "tx", result["tx_id"], "--json", *common).stdout)
    assert tx["height"] == result["height"]
    block = json.loads(run("query", "block", str(result["height"]), "--json", *common).stdout)
    assert block["tx_ids"] == [result["tx_id"]]
    status = json.loads(run("status", "--json", *common).stdout)
    assert status["chain_id"] == tn.chain_id and status["height"] >= result["height"]
    for args in (("query", "block"), ("query", "tx", result["tx_id"]), ("query", "account", dest), ("status",)):
        table = run(*args, *common)
        assert table.exit_code == 0 and table.stdout.strip(), args


def test_cli_errors_are_one_clear_line(served):
    tn, server = served
    common = ["--home", str(tn.home), "--node", server.url]
    bad_to = run("tx", "send", "--from", "gov", "--to", "city12", "--amount", "1", *common)
    assert bad_to.exit_code == 1 and "--to" in bad_to.output
    wrong_pass = run("tx", "send", "--from", "gov", "--to", "city" + "ab" * 20, "--amount", "1",
                     "--passphrase-env", "WRONG", *common, env={"WRONG": "nope"})
    assert wrong_pass.exit_code == 1 and "passphrase" in wrong_pass.output
    poor = run("tx", "send", "--from", "gov", "--to", "city" + "ab" * 20, "--amount", str(10**18),
               "--passphrase-env", "CL_TEST_PASS", *common, env=PASS_ENV)
    assert poor.exit_code == 1 and "bank/1" in poor.output
    missing = run("query", "tx", "00" * 32, "--json", *common)
    assert json.loads(missing.stdout)["status"] == "unknown"
    bad_id = run("query", "tx", "zz", *common)
    assert bad_id.exit_code == 1 and "tx_id" in bad_id.output
    down = run("status", "--node", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach" in down.output


def test_bench_passes_its_arguments_through(monkeypatch):
    import cityledger.tools.bench as bench

    seen = []
    monkeypatch.setattr(bench, "main", lambda argv: seen.append(argv) or 0)
    assert run("bench", "--json", "--txs", "10", "--skip-api").exit_code == 0
    assert seen == [["--json", "--txs", "10", "--skip-api"]]
    monkeypatch.setattr(bench, "main", lambda argv: 3)
    assert run("bench").exit_code == 3


def test_console_entry_point_runs_as_a_process(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               CITYLEDGER_HOME=str(tmp_path / "home"))
    helped = subprocess.run([sys.executable, "-m", "cityledger.cli.main", "--help"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0
    for command in ("init", "up", "keys", "tx", "query", "status", "bench"):
        assert command in helped.stdout
    inited = subprocess.run([sys.executable, "-m", "cityledger.cli.main", "init", "--json"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert inited.returncode == 0 and json.loads(inited.stdout)["home"] == str(tmp_path / "home")
