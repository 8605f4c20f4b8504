"""`cityledger testnet` and `up --engine cometbft` (cli/cometbft_cmds.py) on real CometBFT processes."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from cityledger.cli.cometbft_cmds import app
from cityledger.engines.cometbft.setup import ConsensusTimeouts, allocate_ports

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]

FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=200, precommit_ms=200, commit_ms=100,
                         empty_block_interval_ms=300)


def test_testnet_create_status_stop(tmp_path):
    runner = CliRunner()
    root = tmp_path / "net"
    try:
        result = runner.invoke(app, ["--validators", "2", "--full-nodes", "1", "--root", str(root)])
        assert result.exit_code == 0, result.output
        for name in ("validator0", "validator1", "full0"):
            assert name in result.output

        result = runner.invoke(app, ["status", "--root", str(root), "--json"])
        assert result.exit_code == 0, result.output
        document = json.loads(result.output)
        assert [n["name"] for n in document["nodes"]] == ["validator0", "validator1", "full0"]
        assert all(n["app_running"] and n["cometbft_running"] and n["height"] >= 1 for n in document["nodes"])
        assert [n["voting_power"] for n in document["nodes"]] == [10, 10, 0]
        assert httpx.get(document["nodes"][2]["api"] + "/status").json()["chain_id"] == "city-testnet-1"

        again = runner.invoke(app, ["--validators", "3", "--root", str(root)])  # not what it holds
        assert again.exit_code != 0 and "already holds a testnet of 2 validators" in " ".join(again.output.split())

        # A node's app process exits, naming why, once its CometBFT dies (here the full node's).
        from cityledger.engines.cometbft.testnet import Testnet as LocalNet

        net = LocalNet.load(root)
        os.kill(net._running_pid("full0", "cometbft"), signal.SIGKILL)
        _wait_for(lambda: net._running_pid("full0", "app") is None, "full0's app process to exit")
        assert "stopping: CometBFT closed the consensus connection" in net.log_tail("full0", "app")
        assert all(n["height"] >= 1 for n in json.loads(runner.invoke(app, ["status", "--root", str(root), "--json"])
                                                        .output)["nodes"][:2])
    finally:
        result = runner.invoke(app, ["stop", "--root", str(root)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["status", "--root", str(root), "--json"])
    assert not any(n["app_running"] or n["cometbft_running"] for n in json.loads(result.output)["nodes"])
    missing = runner.invoke(app, ["status", "--root", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and "holds no testnet" in " ".join(missing.output.split())


UP_SCRIPT = """
import sys
from cityledger.cli.cometbft_cmds import up_cometbft
up_cometbft(sys.argv[1], port=int(sys.argv[2]), rpc_port=int(sys.argv[3]), p2p_port=int(sys.argv[4]),
            abci_port=int(sys.argv[5]), log_level="warning")
"""


def test_up_engine_cometbft_serves_the_rest_api_and_light_client(tmp_path):
    from cityledger.node.home import init_home, load_key
    from cityledger.offchain.identity import VEHICLE_REGISTRATION
    from cityledger.sdk import Client, transfer
    from cityledger.sdk.identity import IdentityClient
    from cityledger.sdk.light import LightClient
    from cityledger.core.accounts import account_key, decode_account
    from cityledger.core.keys import PrivateKey

    home = tmp_path / "home"
    api, rpc, p2p, abci = allocate_ports(4)
    init_home(home, chain_id="city-up-1", port=api, members=1)
    member = load_key(next((home / "keys").glob("*.json")))
    process = subprocess.Popen([sys.executable, "-c", UP_SCRIPT, str(home), str(api), str(rpc), str(p2p), str(abci)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{api}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API did not come up"
            time.sleep(0.2)
        sink = PrivateKey.generate().address()
        with Client(url) as client:
            assert client.status().engine == "cometbft"
            tx = transfer("city-up-1", member, client.get_nonce(member.address()), sink, 99)
            result = client.submit(tx, wait=True, timeout_s=30)
            assert (result.check.code, result.status, result.timed_out) == (0, "committed", False), result
            assert client.get_account(sink).balance == 99
        # The issuer offices `init` created are hosted as on a solo node, and anchor through CometBFT.
        token = (home / "issuers" / "transport-office" / "token").read_text().strip()
        with IdentityClient(url, token=token) as office:
            hosted = {i["folder"]: i["did"] for i in office.list_issuers()}
            assert sorted(hosted) == ["id-office", "transport-office"]
            started = time.monotonic()
            ids = office.publish(hosted["transport-office"], VEHICLE_REGISTRATION)
            published = office.get_issuer(hosted["transport-office"])["published"][VEHICLE_REGISTRATION]
            assert published["cred_def_id"] == ids["cred_def_id"] and published["rev_reg_id"], published
            print(f"publish through CometBFT: {time.monotonic() - started:.1f} s")
        genesis = json.loads((home / "cometbft" / "config" / "genesis.json").read_text())
        assert [v["pub_key"]["value"] for v in genesis["validators"]] == [
            base64.b64encode(load_key(home / "node_key.json").public_key.key).decode()]
        with LightClient.from_genesis(f"http://127.0.0.1:{rpc}", genesis) as light:
            assert decode_account(light.get_verified(account_key(sink)).value).balance == 99
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "stopped at height" in output


# -- a node whose CometBFT halts ----------------------------------------------------------------

def _children(pid: int) -> list[int]:
    """The pids of a process's children (from /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(p) for p in handle.read().split()]


def _wait_for(condition, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_up_engine_cometbft_exits_non_zero_when_cometbft_dies(tmp_path):
    from cityledger.node.home import init_home

    home = tmp_path / "home"
    api, rpc, p2p, abci = allocate_ports(4)
    init_home(home, chain_id="city-die-1", port=api, members=1, issuers=False)
    process = subprocess.Popen([sys.executable, "-c", UP_SCRIPT, str(home), str(api), str(rpc), str(p2p), str(abci)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(lambda: process.poll() is not None or _healthy(f"http://127.0.0.1:{api}"), "the API")
        assert process.poll() is None, process.stdout.read()
        [cometbft] = _children(process.pid)
        os.kill(cometbft, signal.SIGKILL)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, output
    assert "the node stopped: cometbft exited with code -9" in " ".join(output.split()), output


def test_health_is_503_with_the_reason_on_a_halted_cometbft_node(tmp_path, monkeypatch):
    import warnings

    from cityledger.node.home import init_home, load_config
    from cityledger.node.runner import CometSettings, Node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from cityledger.api import create_app

    home = tmp_path / "home"
    init_home(home, chain_id="city-halt-1", members=1, issuers=False)
    rpc, p2p, abci = allocate_ports(3)
    config = load_config(home)
    config.engine = "cometbft"
    node = Node(config, CometSettings(rpc_port=rpc, p2p_port=p2p, abci_port=abci, timeouts=FAST))
    node.start()
    try:
        client = TestClient(create_app(node))
        _wait_for(lambda: node.store.last_height() >= 1, "the first block")
        assert client.get("/health").status_code == 200

        def failing_disk(request):
            raise OSError("disk full")

        # The app really fails inside FinalizeBlock: CometBFT is answered with the exception and halts.
        monkeypatch.setattr(node.app, "finalize_block", failing_disk)
        _wait_for(lambda: node.engine.fatal_error() is not None, "the node to halt")
        _wait_for(lambda: node.engine._process.poll() is not None, "cometbft to exit")
        answer = client.get("/health")
        assert answer.status_code == 503, answer.text
        error = answer.json()["error"]
        assert error["code"] == "api/unavailable" and error["field"] == "engine"
        assert "the app failed: OSError('disk full')" in error["message"], error
    finally:
        node.stop()
