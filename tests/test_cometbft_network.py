"""The ledger on real CometBFT processes: one node in-process (CometEngine) and a shared local testnet.

The testnet tests share one 4-validator network (module scope) and run in file order; each leaves
every validator running, so the next one starts from a healthy chain. Together they take about
two to three minutes on two cores.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import pytest

from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey, scheme_from_name
from cityledger.core.tx import build_tx
from cityledger.engines.cometbft.setup import ConsensusTimeouts, NodePorts, allocate_ports, read_identity
from cityledger.engines.cometbft import testnet as testnets
from cityledger.engines.cometbft.testnet import Testnet as LocalNet
from cityledger.modules.bank import Transfer
from cityledger.core.accounts import account_key, decode_account, encode_account
from cityledger.modules.governance import SubmitProposal, ValidatorChange, Vote
from cityledger.node.home import init_home, load_config, load_key
from cityledger.node.runner import CometSettings, Node

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]

FAST = ConsensusTimeouts(propose_ms=1000, prevote_ms=200, precommit_ms=200, commit_ms=100,
                         empty_block_interval_ms=300)
# The app keeps its 2 newest snapshots (app/snapshots.KEEP_SNAPSHOTS): a joining node spends 5 s
# discovering them, so they must outlive that many blocks (with FAST timeouts, 2-3 blocks a second).
SNAPSHOT_INTERVAL = 20
MAX_WAIT_S = 90


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


def _wait_until(condition, what: str, timeout_s: float = MAX_WAIT_S, poll_s: float = 0.2):
    """Poll condition() until it returns a truthy value; fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


# -- one node, app in this process --------------------------------------------------------------

def _comet_node(home: Path, ports: NodePorts) -> Node:
    settings = CometSettings(rpc_port=ports.rpc, p2p_port=ports.p2p, abci_port=ports.abci, timeouts=FAST)
    config = load_config(home)
    config.engine = "cometbft"
    return Node(config, settings)


def test_cometbft_engine_commits_and_restarts(tmp_path):
    home = tmp_path / "home"
    init_home(home, chain_id="city-one-1", members=1, issuers=False)
    chain_id = "city-one-1"
    key = load_key(next((home / "keys").glob("*.json")))
    ports = NodePorts(*allocate_ports(3))

    node = _comet_node(home, ports)
    engine = node.engine
    assert read_identity(home / "cometbft").validator_pub_key == load_key(home / "node_key.json").public_key.key
    node.start()
    try:
        txs = _transfers(chain_id, key, 0, 50)
        submitted = engine.submit_batch(txs)
        assert [s.result.code for s in submitted] == [0] * 50
        replay = engine.submit(txs[0])  # the same bytes again: CometBFT's cache refuses it
        assert replay.result.code != 0 and "cache" in replay.result.log
        found = [engine.wait_for_tx(s.tx_id, timeout_s=30) for s in submitted]
        assert all(f is not None for f in found)
        assert engine.pending_count() == 0 and engine.pending_nonce(key.address()) == 50
        bad = engine.submit(b"not a tx")
        assert bad.result.code != 0
        height = engine.status().height
        before = _balance(engine._rpc, key.address())
        assert engine.fatal_error() is None
    finally:
        node.stop()

    # Restart on the same homes: the chain resumes where it was, with its state.
    node = _comet_node(home, ports)
    engine = node.engine
    node.start()
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
        node.stop()


# -- a testnet of separate processes, shared by the tests below ---------------------------------

@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    net = LocalNet.create(tmp_path_factory.mktemp("net"), validators=4, timeouts=FAST,
                          snapshot_interval=SNAPSHOT_INTERVAL)
    try:
        net.start()
        net.wait_for_height(2, timeout_s=60)
        yield net
    finally:
        net.stop()


class _Nonces:
    """Next nonces of the test's senders, counted locally (txs may still sit in a mempool)."""

    def __init__(self) -> None:
        self.next: dict[bytes, int] = {}

    def take(self, key: PrivateKey, count: int = 1) -> int:
        first = self.next.get(key.address(), 0)
        self.next[key.address()] = first + count
        return first


NONCES = _Nonces()


def _app_hashes(net: LocalNet, name: str, top: int) -> list[str]:
    with net.rpc(name) as client:
        return [client.header_app_hash(h) for h in range(1, top + 1)]


def _submit(net: LocalNet, name: str, txs: list[bytes]) -> list[str]:
    with net.rpc(name) as client:
        answers = [client.broadcast_tx_sync(tx) for tx in txs]
    assert [a["code"] for a in answers] == [0] * len(txs), answers
    return [a["hash"] for a in answers]


def _send_transfers(net: LocalNet, name: str, key: PrivateKey, count: int) -> list[str]:
    return _submit(net, name, _transfers(net.chain_id, key, NONCES.take(key, count), count))


def _find_tx(net: LocalNet, name: str, tx_hash: str) -> dict | None:
    with net.rpc(name) as client:
        try:
            # JSON-RPC over POST takes bytes as base64 (only GET URIs take 0x-hex).
            return client.call("tx", hash=base64.b64encode(bytes.fromhex(tx_hash)).decode())
        except Exception:
            return None


def _committed(net: LocalNet, name: str, tx_hash: str) -> bool:
    found = _find_tx(net, name, tx_hash)
    return found is not None and found["tx_result"]["code"] == 0


def _wait_committed(net: LocalNet, name: str, hashes: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(hashes)
    while pending and time.monotonic() < deadline:
        pending = [h for h in pending if not _committed(net, name, h)]
        time.sleep(0.2)
    assert not pending, f"{len(pending)} txs not committed on {name}:\n{net.log_tail(name)}"


def _app_view(net: LocalNet, name: str) -> tuple[int, str]:
    """(last height, app hash) as the node's app itself reports them (ABCI Info)."""
    with net.rpc(name) as client:
        info = client.call("abci_info")["response"]
    return int(info.get("last_block_height", 0)), base64.b64decode(info.get("last_block_app_hash", "")).hex().upper()


def _assert_app_agrees(net: LocalNet, name: str, reference: str = "validator0") -> int:
    """The node's app reports, for its last height h, the app hash that header h+1 carries on `reference`."""
    height, app_hash = _app_view(net, name)
    net.wait_for_height(height + 1, [reference], timeout_s=30)
    with net.rpc(reference) as client:
        assert client.header_app_hash(height + 1) == app_hash, f"{name} diverged at height {height}"
    return height


def _validators(net: LocalNet, name: str = "validator0") -> dict[str, int]:
    """CometBFT's current validator set: hex Ed25519 pub key -> voting power."""
    with net.rpc(name) as client:
        result = client.call("validators", per_page="100")
    return {base64.b64decode(v["pub_key"]["value"]).hex(): int(v["voting_power"]) for v in result["validators"]}


def test_four_validators_commit_and_agree_on_every_app_hash(testnet):
    key = _member_key(testnet.root / "keys")
    status = testnet.status()
    assert [(s.app_running, s.cometbft_running, s.voting_power) for s in status] == [(True, True, 10)] * 4, status
    # A quorum of 3 needs each node to see 2 others; the last dials may still be under way.
    _wait_until(lambda: all(s.n_peers >= 2 for s in testnet.status()), "every node to have 2 peers", 30)
    hashes = _send_transfers(testnet, "validator0", key, 20)
    _wait_committed(testnet, "validator3", hashes)
    top = min(testnet.heights().values())
    reference = _app_hashes(testnet, "validator0", top)
    assert len(set(reference)) > 1  # the app hash moved with the transfers
    for name in ("validator1", "validator2", "validator3"):
        assert _app_hashes(testnet, name, top) == reference


def test_rest_api_and_sdk_on_a_testnet_node(testnet):
    from cityledger.sdk import Client, transfer

    key = _member_key(testnet.root / "keys")
    sink = PrivateKey.generate().address()
    with Client(testnet.node("validator2").api_url) as client:
        status = client.status()
        assert (status.chain_id, status.engine) == (testnet.chain_id, "cometbft")
        tx = transfer(testnet.chain_id, key, NONCES.take(key), "city" + sink.hex(), 7)
        result = client.submit(tx, wait=True, timeout_s=30)
        assert (result.check.code, result.status, result.timed_out) == (0, "committed", False), result
    with testnet.rpc("validator0") as rpc:
        _wait_until(lambda: _balance(rpc, sink) == 7, "the API's transfer to reach validator0")


def test_one_validator_down_goes_on_two_down_halts_and_resumes(testnet):
    key = _member_key(testnet.root / "keys")
    first = _send_transfers(testnet, "validator0", key, 5)
    _wait_committed(testnet, "validator0", first)

    testnet.stop(["validator3"])
    height = testnet.heights(["validator0"])["validator0"]
    second = _send_transfers(testnet, "validator1", key, 5)
    _wait_committed(testnet, "validator0", second)
    testnet.wait_for_height(height + 2, ["validator0", "validator1", "validator2"], timeout_s=30)

    testnet.stop(["validator2"])
    time.sleep(1.0)  # let a block that was already being voted on finish
    stalled = testnet.heights(["validator0", "validator1"])
    third = _send_transfers(testnet, "validator0", key, 3)
    time.sleep(3.0)
    assert testnet.heights(["validator0", "validator1"]) == stalled  # 20 of 40 power: no quorum
    assert not _committed(testnet, "validator0", third[0])

    testnet.start(["validator2", "validator3"])
    _wait_committed(testnet, "validator3", first + second + third, timeout_s=90)
    top = min(testnet.heights().values())
    assert top > max(stalled.values())
    reference = _app_hashes(testnet, "validator0", top)
    assert _app_hashes(testnet, "validator3", top) == reference


def test_wiped_node_catches_up_by_block_sync(testnet):
    key = _member_key(testnet.root / "keys")
    testnet.stop(["validator3"])
    testnet.wipe("validator3")
    assert not testnet.db_path("validator3").exists()
    hashes = _send_transfers(testnet, "validator0", key, 10)
    _wait_committed(testnet, "validator0", hashes)
    target = testnet.heights(["validator0"])["validator0"]

    testnet.start(["validator3"])
    testnet.wait_for_height(target, ["validator3"], timeout_s=MAX_WAIT_S)
    # It replayed every block from height 1 (block sync, not a snapshot) and its app agrees.
    with testnet.rpc("validator3") as client:
        assert int(client.call("status")["sync_info"]["earliest_block_height"]) == 1
        synced = _balance(client, key.address())
    with testnet.rpc("validator0") as client:
        assert synced == _balance(client, key.address())
    assert _assert_app_agrees(testnet, "validator3") >= target
    _wait_committed(testnet, "validator3", hashes)


def test_app_that_lost_its_last_blocks_is_replayed_by_cometbft(testnet):
    """Under CometBFT the app's SQLite runs synchronous=NORMAL: a power cut may lose its last blocks.

    Simulated here by putting back a copy of the app's database from a few blocks earlier: at the
    handshake CometBFT replays the blocks the app lacks from its own store, and nothing is lost."""
    key = _member_key(testnet.root / "keys")
    db = testnet.db_path("validator2")
    testnet.stop(["validator2"])
    saved = {path: path.read_bytes() for path in db.parent.glob(db.name + "*")}
    lost_height = _read_app_height(db)
    testnet.start(["validator2"])
    hashes = _send_transfers(testnet, "validator2", key, 6)
    _wait_committed(testnet, "validator2", hashes)
    testnet.wait_for_height(lost_height + 3, ["validator2"], timeout_s=MAX_WAIT_S)

    testnet.stop(["validator2"])
    for path in db.parent.glob(db.name + "*"):
        path.unlink()
    for path, data in saved.items():
        path.write_bytes(data)
    assert _read_app_height(db) == lost_height
    testnet.start(["validator2"])
    height = _assert_app_agrees(testnet, "validator2")
    assert height > lost_height + 2
    with testnet.rpc("validator2") as client:
        replayed = _balance(client, key.address())
    with testnet.rpc("validator0") as client:
        assert replayed == _balance(client, key.address())
    _wait_committed(testnet, "validator2", hashes)


def _read_app_height(db: Path) -> int:
    connection = sqlite3.connect(db)
    try:
        return connection.execute("SELECT MAX(height) FROM heights").fetchone()[0]
    finally:
        connection.close()


def test_new_node_joins_by_state_sync(testnet):
    key = _member_key(testnet.root / "keys")
    # Make sure there is a snapshot with two blocks above it (the light client needs header h+2).
    top = testnet.heights(["validator0"])["validator0"]
    testnet.wait_for_height(top + SNAPSHOT_INTERVAL + 2, ["validator0"], timeout_s=60)
    testnet.add_node("full0", state_sync_from=["validator0", "validator1"])
    testnet.start(["full0"])
    try:
        testnet.wait_for_height(top + SNAPSHOT_INTERVAL + 2, ["full0"], timeout_s=MAX_WAIT_S)
    except testnets.TestnetError as exc:
        pytest.fail(f"{exc}\nfull0 cometbft.log:\n{testnet.log_tail('full0')}\napp.log:\n"
                    f"{testnet.log_tail('full0', 'app')}")

    with testnet.rpc("full0") as client:
        earliest = int(client.call("status")["sync_info"]["earliest_block_height"])
        assert earliest > 1, "full0 fetched the whole history instead of a snapshot"
        assert _balance(client, key.address()) > 0
    restored = sqlite3.connect(testnet.db_path("full0"))
    try:
        synced_at = restored.execute("SELECT value FROM meta WHERE name='state_synced_at'").fetchone()
        first_height = restored.execute("SELECT MIN(height) FROM heights").fetchone()[0]
    finally:
        restored.close()
    assert synced_at is not None and int(synced_at[0]) % SNAPSHOT_INTERVAL == 0
    assert first_height == int(synced_at[0])  # no block below the snapshot was ever executed here
    hashes = _send_transfers(testnet, "full0", key, 5)  # and it takes part: its mempool gossips
    _wait_committed(testnet, "validator0", hashes)
    _wait_committed(testnet, "full0", hashes)
    _assert_app_agrees(testnet, "full0")


def _govern(net: LocalNet, action) -> None:
    """member0 proposes the action, member1 approves it (2 of 3): it executes in member1's block."""
    proposer, voter = _member_key(net.root / "keys", 0), _member_key(net.root / "keys", 1)
    [proposed] = _submit(net, "validator0",
                         [build_tx(net.chain_id, [proposer], NONCES.take(proposer), [SubmitProposal(encode(action))])])
    _wait_committed(net, "validator0", [proposed])
    events = _find_tx(net, "validator0", proposed)["tx_result"]["events"]
    [proposal_id] = [a["value"] for e in events if e["type"] == "proposal_submitted"
                     for a in e["attributes"] if a["key"] == "proposal_id"]
    [voted] = _submit(net, "validator1",
                      [build_tx(net.chain_id, [voter], NONCES.take(voter), [Vote(int(proposal_id), True)])])
    _wait_committed(net, "validator0", [voted])
    events = _find_tx(net, "validator0", voted)["tx_result"]["events"]
    assert any(e["type"] == "proposal_executed" for e in events), events


def test_governance_adds_and_removes_a_validator(testnet):
    new_key = bytes.fromhex(testnet.node("full0").validator_pub_key)
    assert new_key.hex() not in _validators(testnet)

    _govern(testnet, ValidatorChange(new_key, 10))
    _wait_until(lambda: _validators(testnet).get(new_key.hex()) == 10, "full0 to join the validator set", 30)
    assert len(_validators(testnet)) == 5
    _wait_until(lambda: testnet.node_status(testnet.node("full0")).voting_power == 10, "full0 to see its power", 30)
    # Five validators of 10 each: full0's precommits now count towards commits.
    key = _member_key(testnet.root / "keys")
    _wait_committed(testnet, "full0", _send_transfers(testnet, "full0", key, 3))
    height = testnet.heights(["validator0"])["validator0"]
    _wait_until(lambda: _signed_by(testnet, height, new_key), "full0 to sign a commit", 30)

    _govern(testnet, ValidatorChange(new_key, 0))
    _wait_until(lambda: new_key.hex() not in _validators(testnet), "full0 to leave the validator set", 30)
    assert sorted(_validators(testnet).values()) == [10] * 4
    with testnet.rpc("validator0") as client:
        response = client.call("abci_query", path="/governance/validators", data="")["response"]
    app_view = json.loads(base64.b64decode(response["value"]))["validators"]
    assert sorted(v["pub_key"] for v in app_view) == sorted(_validators(testnet))


def _signed_by(net: LocalNet, from_height: int, pub_key: bytes) -> bool:
    """True if a commit at or above from_height carries a signature of pub_key's validator."""
    from cityledger.engines.cometbft.setup import compute_address

    address = compute_address(pub_key).hex().upper()
    with net.rpc("validator0") as client:
        top = client.status().height
        for height in range(from_height, top + 1):
            signatures = client.call("commit", height=str(height))["signed_header"]["commit"]["signatures"]
            if any(s.get("validator_address") == address and s.get("signature") for s in signatures):
                return True
    return False


def test_tampered_state_stops_with_app_hash_mismatch(testnet):
    key = _member_key(testnet.root / "keys")
    testnet.stop(["full0"])
    db = sqlite3.connect(testnet.db_path("full0"))
    try:
        committed = db.execute("SELECT app_hash FROM heights ORDER BY height DESC LIMIT 1").fetchone()[0]
        [(value,)] = db.execute("SELECT value FROM state WHERE key=?", (account_key(key.address()),)).fetchall()
        account = decode_account(value)
        forged = encode_account(account.nonce, account.balance + 1_000_000)
        with db:
            db.execute("UPDATE state SET value=? WHERE key=?", (forged, account_key(key.address())))
    finally:
        db.close()

    with pytest.raises(testnets.TestnetError) as failure:
        testnet.start(["full0"])
    message = str(failure.value)
    assert "app hash mismatch" in message, message
    assert committed.hex().upper() in message, message
    [line] = [line for line in message.splitlines() if "app hash mismatch" in line]
    hashes = [word for word in line.replace("(", " ").split() if len(word) == 64]
    assert len(set(hashes)) == 2, line  # the recomputed hash and the committed one, both named
    # The rest of the network never noticed: it goes on.
    _wait_committed(testnet, "validator0", _send_transfers(testnet, "validator0", key, 2))
