"""The whole node as users run it: `cityledger up` in a subprocess, driven by the SDK over HTTP."""

from __future__ import annotations

import signal

import httpx
import pytest

from cityledger.core.accounts import account_key, decode_account, encode_account
from cityledger.node.home import init_home, load_key
from cityledger.sdk import Client, PrivateKey, multi_send, transfer, tx_id, verify_state_proof

from test_api_helpers import NodeProcess

pytestmark = pytest.mark.slow


def test_node_process_commits_transfers_proves_state_and_stops_cleanly(tmp_path):
    home = tmp_path / "home"
    init_home(home, chain_id="integration-city-1")
    gov = load_key(home / "keys" / "city-government.json")
    recipients = [PrivateKey.generate().address() for _ in range(3)]

    node = NodeProcess(home).start()
    try:
        with Client(node.url) as client:
            assert client.health().status == "ok"
            chain_id = client.status().chain_id
            assert chain_id == "integration-city-1"
            start = client.get_account(gov.address())

            # One tx waited for through POST /txs?wait=true.
            first = client.submit(transfer(chain_id, gov, start.nonce, recipients[0], 1_000), wait=True)
            assert first.committed and first.result.ok

            # A batch, then waiting on its last tx.
            batch = [transfer(chain_id, gov, start.nonce + 1 + i, recipients[1], 10) for i in range(50)]
            batch.append(multi_send(chain_id, gov, start.nonce + 51, [(recipients[2], 7), (recipients[0], 3)]))
            answer = client.submit_batch(batch)
            assert answer.accepted == len(batch), [r.log for r in answer.results if not r.ok]
            assert client.wait(tx_id(batch[-1]), timeout_s=20).committed

            balances = {r: client.get_account(r).balance for r in recipients}
            assert balances == {recipients[0]: 1_003, recipients[1]: 500, recipients[2]: 7}
            after = client.get_account(gov.address())
            assert after.nonce == start.nonce + 52 and after.balance == start.balance - 1_510

            # Proofs verify against the app hash the node reports, and only for the true value.
            status = client.status()
            for recipient, balance in balances.items():
                state = client.get_state(account_key(recipient), height=status.height, prove=True)
                assert state.app_hash == status.app_hash
                assert verify_state_proof(account_key(recipient), encode_account(0, balance), state.proof_bytes,
                                          status.app_hash)
                assert not verify_state_proof(account_key(recipient), encode_account(0, balance + 1),
                                              state.proof_bytes, status.app_hash)
                assert decode_account(client.get_verified(account_key(recipient))).balance == balance
            metrics = httpx.get(node.url + "/metrics").text
            assert "cityledger_txs_committed_total 52.0" in metrics
        height, app_hash = status.height, status.app_hash
    finally:
        exit_code = node.stop(signal.SIGTERM)
    assert exit_code == 0, node.log.read_text()[-2000:]

    # A restart resumes where it stopped, with the same state; SIGINT stops it cleanly too.
    node = NodeProcess(home).start()
    try:
        with Client(node.url) as client:
            status = client.status()
            assert (status.height, status.app_hash) == (height, app_hash)
            assert client.get_account(recipients[1]).balance == 500
    finally:
        assert node.stop(signal.SIGINT) == 0
