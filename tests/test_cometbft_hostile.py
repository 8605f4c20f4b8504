"""Hostile transactions on real CometBFT validators: the chain goes on and every app hash agrees.

The reproducers of issue 11's first defect (each once halted CometBFT: the app raised something other
than TxError) are posted to a validator's REST API, as any unauthenticated user could. Afterwards the
network must keep committing (several more blocks, then a valid transfer), both validators must still
run, and their app hashes must agree at every height.
"""

from __future__ import annotations

import time

import httpx
import pytest

from cityledger.core.keys import PrivateKey, PublicKey, Signer
from cityledger.core.tx import build_tx
from cityledger.engines.cometbft.testnet import Testnet as LocalNet
from cityledger.engines.cometbft.testnet import compute_default_app_state
from cityledger.modules.devices import RegisterDevice
from cityledger.modules.governance import Vote
from cityledger.modules.identity import AnchorCredDef, AnchorSchema, DeactivateDid, UpdateDid, compute_did
from cityledger.modules.identity import compute_schema_id
from cityledger.node.issuers import compute_manufacturer_entry
from cityledger.offchain.identity import RESIDENT_ID

from cityledger.modules.payments import SetPolicy
from cityledger.modules.payments.quotas import TXS_PER_WINDOW, WINDOW_BLOCKS
from test_cometbft_network import FAST, _app_hashes, _member_key

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]

MORE_BLOCKS = 5
MAX_WAIT_S = 90
NESTING = 2_000  # "[" * 2000 + "]" * 2000: about 4 KB of nested JSON
SCHEMA = (RESIDENT_ID, "1.0")
QUOTA = 6


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Two validators with the REST API; the genesis hosts one organisation DID (an accredited issuer)."""
    root = tmp_path_factory.mktemp("hostile")
    state = compute_default_app_state(root / "keys", members=1)
    office = PrivateKey.generate()
    entry = compute_manufacturer_entry(office)
    entry["accreditations"] = sorted(entry["accreditations"] + [SCHEMA[0]])  # an issuer of resident IDs too
    state["identity"] = {"dids": [entry]}
    # A tight window quota (members send at most 4 txs here): the spam limit under CometBFT, below.
    state["governance"]["params"] = {TXS_PER_WINDOW: QUOTA, WINDOW_BLOCKS: 100_000}
    net = LocalNet.create(root / "net", validators=2, timeouts=FAST, app_state=state, snapshot_interval=0)
    net.office, net.office_did = office, compute_did(office.signer(), b"")
    net.member = _member_key(root / "keys")
    try:
        net.start()
        net.wait_for_height(2, timeout_s=MAX_WAIT_S)
        yield net
    finally:
        net.stop()


def _hostile_txs(network) -> dict[str, tuple[PrivateKey, object]]:
    """Issue 11, defect 1: each (signer, message) once made the app raise inside CheckTx or FinalizeBlock.

    Most come from a new key with no funds; the vote from a consortium member and the credential
    definition from the DID's controller, so that they pass the checks before the one that raised.
    """
    did = network.office_did
    newline_did = did + "\n"
    device_key = PublicKey(1, PrivateKey.generate().public_key.key)
    return {
        "deactivate newline DID": (PrivateKey.generate(), DeactivateDid(newline_did)),
        "vote on proposal -1": (network.member, Vote(proposal_id=-1, approve=True)),
        "update newline DID": (PrivateKey.generate(), UpdateDid(newline_did, 1, Signer(1, [device_key]), [], [])),
        "register device of newline DID": (PrivateKey.generate(), RegisterDevice(
            "vehicle", "model-x", device_key, newline_did, b"\x00" * 64, b"\x00" * 64)),
        "cred def of nested JSON": (network.office, AnchorCredDef(did, compute_schema_id(did, *SCHEMA), "default",
                                                                  b"[" * NESTING + b"]" * NESTING)),
        "policy with a negative quota": (PrivateKey.generate(), SetPolicy(did, 1, 1, [], [], 10, -1)),
    }


def test_hostile_txs_are_refused_and_the_chain_goes_on_with_one_app_hash(network):
    from cityledger.sdk import Client, transfer

    api = network.node("validator0").api_url
    with Client(api) as client:  # the credential definition needs its schema anchored first
        schema = AnchorSchema(network.office_did, *SCHEMA, ["name"])
        anchored = client.submit(build_tx(network.chain_id, [network.office], 0, [schema]), wait=True,
                                 timeout_s=MAX_WAIT_S)
        assert (anchored.check.code, anchored.status) == (0, "committed"), anchored
        answers = {}
        for name, (key, message) in _hostile_txs(network).items():
            tx = build_tx(network.chain_id, [key], client.get_nonce(key.address()), [message])
            answer = httpx.post(api + "/txs", json={"tx": tx.hex(), "encoding": "hex"}, timeout=30)
            answers[name] = (answer.status_code, answer.text[:300])
    assert all(400 <= status < 500 for status, _ in answers.values()), answers  # refused, never a 5xx

    start = max(network.heights().values())
    network.wait_for_height(start + MORE_BLOCKS, timeout_s=MAX_WAIT_S)  # raises naming the heights if stuck
    sink = PrivateKey.generate().address()
    with Client(network.node("validator1").api_url) as client:
        tx = transfer(network.chain_id, network.member, client.get_nonce(network.member.address()), sink, 11)
        result = client.submit(tx, wait=True, timeout_s=MAX_WAIT_S)
    assert (result.check.code, result.status) == (0, "committed"), result

    status = network.status()
    assert all(s.app_running and s.cometbft_running for s in status), [network.log_tail(s.name, "app") for s in status]
    top = min(network.heights().values())
    deadline = time.monotonic() + MAX_WAIT_S
    while top < start + MORE_BLOCKS and time.monotonic() < deadline:
        time.sleep(0.2)
        top = min(network.heights().values())
    assert _app_hashes(network, "validator0", top) == _app_hashes(network, "validator1", top)


def test_a_sender_past_its_window_quota_is_refused_and_validators_agree(network):
    from cityledger.sdk import Client, TxRejected, transfer

    spammer, sink = PrivateKey.generate(), PrivateKey.generate().address()
    with Client(network.node("validator0").api_url) as client:
        funded = client.submit(transfer(network.chain_id, network.member, client.get_nonce(network.member.address()),
                                        spammer.address(), 1_000), wait=True, timeout_s=MAX_WAIT_S)
        assert funded.status == "committed", funded
        for nonce in range(QUOTA):
            assert client.submit(transfer(network.chain_id, spammer, nonce, sink, 1)).check.code == 0
        with pytest.raises(TxRejected) as refused:
            client.submit(transfer(network.chain_id, spammer, QUOTA, sink, 1))
        assert refused.value.status == 429 and refused.value.field == "sender"
        # Another sender is not held back, and once it commits every admitted tx of the spammer has too.
        last = client.submit(transfer(network.chain_id, network.member, client.get_nonce(network.member.address()),
                                      sink, 1), wait=True, timeout_s=MAX_WAIT_S)
        assert last.status == "committed"
        deadline = time.monotonic() + MAX_WAIT_S
        while client.get_account(sink).balance < QUOTA + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.get_account(sink).balance == QUOTA + 1
    top = min(network.heights().values())
    assert _app_hashes(network, "validator0", top) == _app_hashes(network, "validator1", top)
