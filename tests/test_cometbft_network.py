"""The ledger on real CometBFT processes: one node in-process (CometEngine) and local testnets."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from cityledger.core.keys import PrivateKey, scheme_from_name
from cityledger.core.tx import build_tx
from cityledger.engines.cometbft.node import CometEngine
from cityledger.engines.cometbft.serve import open_city_app
from cityledger.engines.cometbft.setup import ConsensusTimeouts, NodePorts, allocate_ports
from cityledger.engines.cometbft.testnet import Testnet as LocalNet
from cityledger.engines.cometbft.testnet import compute_default_app_state
from cityledger.modules.bank import Transfer

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]

FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=200, precommit_ms=200, commit_ms=100,
                         empty_block_interval_ms=300)


def _member_key(keys_dir: Path, index: int = 0) -> PrivateKey:
    data = json.loads((keys_dir / f"member{index}.json").read_text())
    return PrivateKey(scheme_from_name(data["scheme"]), bytes.fromhex(data["seed"]))


def _transfers(chain_id: str, key: PrivateKey, first_nonce: int, count: int) -> list[bytes]:
    sink = PrivateKey.generate().address()
    return [build_tx(chain_id, [key], first_nonce + i, [Transfer(sink, 1)]) for i in range(count)]


def _balance(rpc, address: bytes) -> int:
    data = json.dumps({"address": "city" + address.hex()}).encode().hex()
    response = rpc.call("abci_query", path="/bank/balance", data=data)["response"]
    return json.loads(base64.b64decode(response["value"]))["balance"]


# -- one node, app in this process --------------------------------------------------------------

def test_cometbft_engine_commits_and_restarts(tmp_path):
    chain_id = "city-one-1"
    app_state = compute_default_app_state(tmp_path / "keys", members=1)
    key = _member_key(tmp_path / "keys")
    seed = PrivateKey.generate().seed
    ports = NodePorts(*allocate_ports(3))

    app, store = open_city_app(tmp_path / "data" / "ledger.sqlite", chain_id, 100)
    engine = CometEngine(app, tmp_path / "cometbft", ports, FAST)
    identity = engine.prepare(chain_id, app_state, validator_seed=seed)
    assert identity.validator_pub_key == PrivateKey(scheme_from_name("ed25519"), seed).public_key.key
    engine.start()
    try:
        txs = _transfers(chain_id, key, 0, 50)
        submitted = engine.submit_batch(txs)
        assert [s.result.code for s in submitted] == [0] * 50
        replay = engine.submit(txs[0])  # the same bytes again: CometBFT's cache refuses it
        assert replay.result.code != 0 and "cache" in replay.result.log
        found = [engine.wait_for_tx(s.tx_id, timeout_s=30) for s in submitted]
        assert all(f is not None for f in found)
        bad = engine.submit(b"not a tx")
        assert bad.result.code != 0
        height = engine.status().height
        before = _balance(engine._rpc, key.address())
    finally:
        engine.stop()
        store.close()

    # Restart on the same homes: the chain resumes where it was, with its state.
    app, store = open_city_app(tmp_path / "data" / "ledger.sqlite", chain_id, 100)
    engine = CometEngine(app, tmp_path / "cometbft", ports, FAST)
    engine.prepare(chain_id, app_state, validator_seed=seed)
    engine.start()
    try:
        deadline = time.monotonic() + 30
        while engine.status().height <= height and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engine.status().height > height
        assert _balance(engine._rpc, key.address()) == before
        more = engine.submit_batch(_transfers(chain_id, key, 50, 5))
        assert [s.result.code for s in more] == [0] * 5
        assert engine.wait_for_tx(more[-1].tx_id, timeout_s=30) is not None
    finally:
        engine.stop()
        store.close()


# -- a testnet of separate processes ------------------------------------------------------------

@pytest.fixture
def testnet(tmp_path):
    net = LocalNet.create(tmp_path / "net", validators=4, timeouts=FAST)
    try:
        net.start()
        net.wait_for_height(2, timeout_s=60)
        yield net
    finally:
        net.stop()


def _app_hashes(net: LocalNet, name: str, top: int) -> list[str]:
    with net.rpc(name) as client:
        return [client.header_app_hash(h) for h in range(1, top + 1)]


def _submit(net: LocalNet, name: str, txs: list[bytes]) -> list[str]:
    with net.rpc(name) as client:
        answers = [client.broadcast_tx_sync(tx) for tx in txs]
    assert [a["code"] for a in answers] == [0] * len(txs), answers
    return [a["hash"] for a in answers]


def _committed(net: LocalNet, name: str, tx_hash: str) -> bool:
    with net.rpc(name) as client:
        try:
            # JSON-RPC over POST takes bytes as base64 (only GET URIs take 0x-hex).
            found = client.call("tx", hash=base64.b64encode(bytes.fromhex(tx_hash)).decode())
            return found["tx_result"]["code"] == 0
        except Exception:
            return False


def _wait_committed(net: LocalNet, name: str, hashes: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(hashes)
    while pending and time.monotonic() < deadline:
        pending = [h for h in pending if not _committed(net, name, h)]
        time.sleep(0.2)
    assert not pending, f"{len(pending)} txs not committed on {name}:\n{net.log_tail(name)}"


def test_four_validators_commit_and_agree_on_every_app_hash(testnet):
    key = _member_key(testnet.root / "keys")
    status = testnet.status()
    assert [(s.app_running, s.cometbft_running, s.voting_power) for s in status] == [(True, True, 10)] * 4, status
    assert all(s.n_peers >= 2 for s in status), status  # a quorum of 3 needs each node to see 2 others
    hashes = _submit(testnet, "validator0", _transfers(testnet.chain_id, key, 0, 20))
    _wait_committed(testnet, "validator3", hashes)
    top = min(testnet.heights().values())
    reference = _app_hashes(testnet, "validator0", top)
    assert len(set(reference)) > 1  # the app hash moved with the transfers
    for name in ("validator1", "validator2", "validator3"):
        assert _app_hashes(testnet, name, top) == reference


def test_one_validator_down_goes_on_two_down_halts_and_resumes(testnet):
    key = _member_key(testnet.root / "keys")
    first = _submit(testnet, "validator0", _transfers(testnet.chain_id, key, 0, 5))
    _wait_committed(testnet, "validator0", first)

    testnet.stop(["validator3"])
    height = testnet.heights(["validator0"])["validator0"]
    second = _submit(testnet, "validator1", _transfers(testnet.chain_id, key, 5, 5))
    _wait_committed(testnet, "validator0", second)
    testnet.wait_for_height(height + 2, ["validator0", "validator1", "validator2"], timeout_s=30)

    testnet.stop(["validator2"])
    time.sleep(1.0)  # let a block that was already being voted on finish
    stalled = testnet.heights(["validator0", "validator1"])
    third = _submit(testnet, "validator0", _transfers(testnet.chain_id, key, 10, 3))
    time.sleep(3.0)
    assert testnet.heights(["validator0", "validator1"]) == stalled  # 20 of 40 power: no quorum
    assert not _committed(testnet, "validator0", third[0])

    testnet.start(["validator2", "validator3"])
    _wait_committed(testnet, "validator3", first + second + third, timeout_s=90)
    top = min(testnet.heights().values())
    assert top > max(stalled.values())
    reference = _app_hashes(testnet, "validator0", top)
    assert _app_hashes(testnet, "validator3", top) == reference
