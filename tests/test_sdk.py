"""The SDK: keystore, tx builders, proofs, and both clients against a live API."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest

import cityledger.sdk as sdk
from cityledger.core.keys import SCHEME_P256, make_signer
from cityledger.core.tree import Proof
from cityledger.core.tx import TxCodec
from cityledger.modules.bank import MultiSend, Transfer
from cityledger.core.accounts import account_key, decode_account
from cityledger.modules.governance import ParamChange, SubmitProposal, Vote
from cityledger.sdk import (
    ApiError,
    AsyncClient,
    Client,
    KeyExists,
    KeyNotFound,
    Keystore,
    KeystoreError,
    PrivateKey,
    ProofError,
    TxRejected,
    WrongPassphrase,
    verify_state_proof,
)

from test_api_helpers import LiveServer, make_node

FAST_N = 2**10  # scrypt cost for tests only; real keystores default to 2**17


def test_public_api_is_sorted_and_importable():
    assert sdk.__all__ == sorted(sdk.__all__)
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


# -- keystore ------------------------------------------------------------------------------------

def test_keystore_round_trip(tmp_path):
    store = Keystore(tmp_path / "ks", scrypt_n=FAST_N)
    created = store.create("alice", "correct horse")
    imported_key = PrivateKey.generate(SCHEME_P256)
    imported = store.import_key("vehicle-7", imported_key, "battery staple")
    assert [info.name for info in store.list()] == ["alice", "vehicle-7"]
    assert store.info("alice") == created and imported.scheme == "p256"
    loaded = store.load("alice", "correct horse")
    assert "city" + loaded.address().hex() == created.address
    assert store.load("vehicle-7", "battery staple").seed == imported_key.seed
    mode = stat.S_IMODE(created.path.stat().st_mode)
    assert mode == 0o600
    assert imported_key.seed.hex() not in created.path.parent.joinpath("vehicle-7.json").read_text()


def test_keystore_refuses_wrong_passphrase_and_altered_files(tmp_path):
    store = Keystore(tmp_path, scrypt_n=FAST_N)
    info = store.create("alice", "right")
    with pytest.raises(WrongPassphrase):
        store.load("alice", "wrong")
    doc = json.loads(info.path.read_text())
    doc["address"] = "city" + "00" * 20  # someone swaps the shown address
    info.path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassphrase):
        store.load("alice", "right")


def test_keystore_errors_name_the_problem(tmp_path):
    store = Keystore(tmp_path, scrypt_n=FAST_N)
    store.create("alice", "pw")
    with pytest.raises(KeyExists):
        store.create("alice", "pw")
    with pytest.raises(KeyNotFound):
        store.load("bob", "pw")
    with pytest.raises(KeystoreError, match="name"):
        store.create("../escape", "pw")
    with pytest.raises(KeystoreError, match="passphrase"):
        store.create("empty", "")
    with pytest.raises(KeystoreError, match="scrypt_n"):
        Keystore(tmp_path, scrypt_n=1000)
    (tmp_path / "junk.json").write_text("{not json")
    assert [info.name for info in store.list()] == ["alice"]


# -- tx builders ---------------------------------------------------------------------------------

def test_builders_make_txs_the_node_decodes():
    key, other = PrivateKey.generate(), PrivateKey.generate()
    codec = TxCodec([Transfer, MultiSend, SubmitProposal, Vote], "c-1")
    decoded = codec.decode(sdk.transfer("c-1", key, 3, "city" + other.address().hex(), 10, expiry_height=9))
    assert decoded.sender == key.address() and decoded.nonce == 3 and decoded.tx.body.expiry_height == 9
    assert decoded.messages == [Transfer(other.address(), 10)]
    multi = codec.decode(sdk.multi_send("c-1", key, 0, [(other.address(), 1), ("city" + "11" * 20, 2)]))
    assert [o.amount for o in multi.messages[0].outputs] == [1, 2]
    proposal = codec.decode(sdk.propose("c-1", key, 0, ParamChange("bank.max_outputs", 10)))
    assert isinstance(proposal.messages[0], SubmitProposal)
    assert codec.decode(sdk.vote("c-1", key, 1, 4, approve=False)).messages == [Vote(4, False)]
    two_of_two = make_signer(2, [key.public_key, other.public_key])
    shared = codec.decode(sdk.transfer("c-1", [key, other], 0, other.address(), 1, signer=two_of_two))
    assert len(shared.tx.signatures) == 2
    assert sdk.tx_id(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(ValueError, match="to"):
        sdk.transfer("c-1", key, 0, "city12", 1)


# -- proofs --------------------------------------------------------------------------------------

@pytest.fixture
def live(tmp_path):
    tn = make_node(tmp_path)
    with LiveServer(tn.node) as server:
        yield tn, server


def test_proofs_verify_and_tampered_proofs_fail(live):
    tn, server = live
    with Client(server.url) as client:
        client.submit(sdk.transfer(tn.chain_id, tn.alice, 0, tn.bob.address(), 1), wait=True)
        key = account_key(tn.alice.address())
        answer = client.get_state(key, prove=True)
    value, proof = answer.value_bytes, Proof.from_bytes(bytes.fromhex(answer.proof_bytes))
    assert verify_state_proof(key, value, proof, answer.app_hash)
    assert verify_state_proof(key, value, proof.to_bytes(), bytes.fromhex(answer.app_hash))
    assert verify_state_proof(key, value, proof.to_dict(), answer.app_hash)
    assert not verify_state_proof(key, value[:-1] + b"\x00", proof, answer.app_hash)
    assert not verify_state_proof(key, None, proof, answer.app_hash)
    assert not verify_state_proof(account_key(tn.bob.address()), value, proof, answer.app_hash)
    flipped = bytearray(proof.siblings[0])
    flipped[-1] ^= 1  # a byte of a sibling hash (a level starts with its sibling bitmap)
    tampered = Proof((bytes(flipped),) + proof.siblings[1:], proof.leaf)
    assert not verify_state_proof(key, value, tampered, answer.app_hash)
    assert not verify_state_proof(key, value, Proof(proof.siblings[:-1], proof.leaf), answer.app_hash)
    assert not verify_state_proof(key, value, b"\x00garbage", answer.app_hash)
    assert not verify_state_proof(key, value, proof, "00" * 32)
    with pytest.raises(ValueError, match="app_hash"):
        verify_state_proof(key, value, proof, b"short")


# -- clients -------------------------------------------------------------------------------------

def test_client_drives_a_node(live):
    tn, server = live
    dest = PrivateKey.generate().address()
    with Client(server.url) as client:
        status = client.status()
        assert status.chain_id == tn.chain_id and client.health().status == "ok"
        nonce = client.get_nonce(tn.alice.address())
        result = client.submit(sdk.transfer(status.chain_id, tn.alice, nonce, dest, 25), wait=True, timeout_s=10)
        assert result.committed and result.result.ok and result.check.ok
        assert result.result.events[0].get("amount") == "25"
        assert client.get_account(dest).balance == 25
        assert client.get_tx(result.tx_id).height == result.height
        assert client.get_block(result.height).tx_ids == [result.tx_id]
        assert client.get_block().height >= result.height
        assert client.query("bank", "balance", address="city" + dest.hex()) == {"address": "city" + dest.hex(),
                                                                               "balance": 25}
        assert decode_account(client.get_verified(account_key(dest))).balance == 25
        assert client.get_verified(account_key(b"\x05" * 20)) is None

        txs = [sdk.transfer(status.chain_id, tn.alice, nonce + 1 + i, dest, 1) for i in range(20)]
        batch = client.submit_batch(txs)
        assert batch.accepted == 20 and [r.tx_id for r in batch.results] == [sdk.tx_id(tx) for tx in txs]
        assert client.wait(sdk.tx_id(txs[-1]), timeout_s=10).committed
        assert client.get_account(dest).balance == 45

        with pytest.raises(TxRejected) as rejected:
            client.submit(txs[0])
        assert rejected.value.status == 409 and rejected.value.field == "body.nonce"
        assert rejected.value.codespace == "tx" and rejected.value.abci_code == 5
        with pytest.raises(ApiError) as missing:
            client.get_block(10_000)
        assert missing.value.status == 404 and missing.value.code == "api/not_found"
        with pytest.raises(ProofError):
            client.get_verified(account_key(dest), app_hash="00" * 32)


def test_async_client_drives_a_node(live):
    tn, server = live
    dest = PrivateKey.generate().address()

    async def scenario():
        async with AsyncClient(server.url) as client:
            status = await client.status()
            nonce = await client.get_nonce(tn.alice.address())
            txs = [sdk.transfer(status.chain_id, tn.alice, nonce + i, dest, 2) for i in range(5)]
            first = await client.submit(txs[0])
            assert first.status == "pending"
            batch = await client.submit_batch(txs[1:])
            assert batch.accepted == 4
            waited = await asyncio.gather(*(client.wait(sdk.tx_id(tx), timeout_s=10) for tx in txs))
            assert all(w.committed for w in waited)
            assert (await client.get_account(dest)).balance == 10
            assert decode_account(await client.get_verified(account_key(dest))).balance == 10
            assert (await client.get_tx(first.tx_id)).committed
            assert (await client.get_block(waited[0].height)).num_txs >= 1
            assert (await client.query("bank", "supply"))["supply"] > 0
            assert (await client.health()).status == "ok"

    asyncio.run(scenario())
