"""The SDK's light client: CometBFT's hashes and sign bytes, then proven reads from a real 4-validator network."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from datetime import datetime, timezone
from fractions import Fraction

import pytest

from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.core.accounts import account_key, decode_account
from cityledger.sdk.light import (
    BlockId,
    Commit,
    CommitSig,
    Header,
    LightClient,
    LightClientError,
    ValidatorSet,
    compute_header_hash,
    compute_merkle_root,
    compute_vote_sign_bytes,
    parse_signed_header,
    parse_time,
    parse_validators,
    verify_commit,
    verify_query,
)

GO_ZERO_TIME = (-62135596800, 0)  # Go's time.Time{} as a protobuf Timestamp


def _sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


# -- CometBFT's own test vectors (crypto/merkle/tree_test.go, types/block_test.go, types/vote_test.go) --

@pytest.mark.parametrize("items, expected", [
    ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ([bytes([1, 2, 3])], "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"),
    ([b""], "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    ([bytes([1, 2, 3]), bytes([4, 5, 6])], "82e6cfce00453804379b53962939eaa7906b39904be0813fcadd31b100773c4b"),
    ([bytes([1, 2]), bytes([3, 4]), bytes([5, 6]), bytes([7, 8]), bytes([9, 10])],
     "f326493eceab4f2d9ffbc78c59432a0a005d6ea98392045c74df5d14a113be18"),
])
def test_merkle_root_matches_cometbft_vectors(items, expected):
    assert compute_merkle_root(items).hex() == expected


def test_header_hash_matches_cometbft_vector():
    seconds = int(datetime(2019, 10, 13, 16, 14, 44, tzinfo=timezone.utc).timestamp())
    header = Header(1, 2, "chainId", 3, (seconds, 0), BlockId(bytes(32), 6, bytes(32)), _sha("last_commit_hash"),
                    _sha("data_hash"), _sha("validators_hash"), _sha("next_validators_hash"), _sha("consensus_hash"),
                    _sha("app_hash"), _sha("last_results_hash"), _sha("evidence_hash"),
                    _sha("proposer_address")[:20])
    assert compute_header_hash(header).hex().upper() == "F740121F553B5418C3EFBD343C2DBFE9E007BB67B0D020A0741374BAB65242A4"


def test_vote_sign_bytes_match_cometbft_vectors():
    nil_precommit = Commit(1, 1, BlockId(b"", 0, b""), (CommitSig(1, b"", GO_ZERO_TIME, b""),))
    assert compute_vote_sign_bytes("", nil_precommit, 0) == bytes([
        0x21, 0x8, 0x2, 0x11, 0x1, 0, 0, 0, 0, 0, 0, 0, 0x19, 0x1, 0, 0, 0, 0, 0, 0, 0,
        0x2a, 0xb, 0x8, 0x80, 0x92, 0xb8, 0xc3, 0x98, 0xfe, 0xff, 0xff, 0xff, 0x1])


def test_parse_time_keeps_nanoseconds():
    assert parse_time("2026-11-25T09:18:16.573708147Z")[1] == 573708147
    assert parse_time("2026-11-25T09:18:16.5Z")[1] == 500_000_000
    assert parse_time("1970-01-01T00:00:01Z") == (1, 0)
    with pytest.raises(ValueError):
        parse_time("2026-11-25T09:18:16+01:00")


# -- a real network -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def network(tmp_path_factory):
    from cityledger.engines.cometbft.setup import ConsensusTimeouts
    from cityledger.engines.cometbft.testnet import Testnet

    net = Testnet.create(tmp_path_factory.mktemp("light"), validators=4, api=False,
                         timeouts=ConsensusTimeouts(propose_ms=1000, prevote_ms=200, precommit_ms=200, commit_ms=100,
                                                    empty_block_interval_ms=300))
    try:
        net.start()
        net.wait_for_height(2, timeout_s=60)
        genesis = json.loads((net.cometbft_home("validator0") / "config" / "genesis.json").read_text())
        member = json.loads((net.root / "keys" / "member0.json").read_text())
        key = PrivateKey(1, bytes.fromhex(member["seed"]))
        sink = PrivateKey.generate().address()
        with net.rpc("validator0") as rpc:
            answer = rpc.broadcast_tx_sync(build_tx(net.chain_id, [key], 0, [Transfer(sink, 4242)]))
            assert answer["code"] == 0, answer
        yield net, genesis, sink
    finally:
        net.stop()


def _client(network, name: str = "validator1", **options) -> LightClient:
    net, genesis, _ = network
    return LightClient.from_genesis(net.node(name).rpc_url, genesis, **options)


def _fetch(client: LightClient, key: bytes) -> tuple[dict, dict, list]:
    """A proven query's raw parts: the abci_query response, /commit of height + 1, /validators."""
    response = client._call("abci_query", path="/store", data=key.hex(), height="0", prove=True)["response"]
    height = int(response["height"]) + 1
    client._wait_for_height(height, 10)
    return response, client._call("commit", height=str(height)), client.fetch_validators(height)


def _verify(client: LightClient, key: bytes, parts) -> bytes | None:
    response, commit, validators = parts
    signed = parse_signed_header(commit)
    verify_commit(client.chain_id, signed, parse_validators(validators), client.trusted, client.trust_level)
    return verify_query(key, response, signed.header.app_hash)


def _wait_balance(client: LightClient, key: bytes) -> bytes:
    import time

    deadline = time.monotonic() + 30
    while (found := client.get_verified(key).value) is None:
        assert time.monotonic() < deadline, "the transfer was not committed"
    return found


@pytest.mark.cometbft
@pytest.mark.slow
def test_verified_read_of_a_balance_and_of_an_absent_key(network):
    _, _, sink = network
    with _client(network) as client:
        value = _wait_balance(client, account_key(sink))
        assert decode_account(value).balance == 4242
        absent = client.get_verified(account_key(PrivateKey.generate().address()))
        assert absent.value is None and absent.height > 0
        past = client.get_verified(account_key(sink), height=absent.height - 1)
        assert past.value == value
    # The same read through another node gives the same proven answer.
    with _client(network, "validator3") as other:
        assert other.get_verified(account_key(sink)).value == value


@pytest.mark.cometbft
@pytest.mark.slow
def test_invalid_tampered_value(network):
    _, _, sink = network
    with _client(network) as client:
        _wait_balance(client, account_key(sink))
        response, commit, validators = _fetch(client, account_key(sink))
        assert _verify(client, account_key(sink), (response, commit, validators)) is not None
        forged = dict(response, value=base64.b64encode((10**12).to_bytes(8, "big")).decode())
        with pytest.raises(LightClientError, match="does not prove"):
            _verify(client, account_key(sink), (forged, commit, validators))
        hidden = dict(response, value=None, log="absent")  # claiming it is not there fails too
        with pytest.raises(LightClientError, match="does not prove its absence"):
            _verify(client, account_key(sink), (hidden, commit, validators))
        # A header with another app hash no longer hashes to the block id the validators signed.
        moved = copy.deepcopy(commit)
        moved["signed_header"]["header"]["app_hash"] = hashlib.sha256(b"another state").hexdigest().upper()
        with pytest.raises(LightClientError, match="hashes to"):
            _verify(client, account_key(sink), (forged, moved, validators))


@pytest.mark.cometbft
@pytest.mark.slow
def test_invalid_tampered_signature(network):
    _, _, sink = network
    with _client(network) as client:
        response, commit, validators = _fetch(client, account_key(sink))
        # Not every precommit makes it into a commit: tamper with ones that are there.
        present = [i for i, s in enumerate(commit["signed_header"]["commit"]["signatures"]) if s["block_id_flag"] == 2]
        assert len(present) >= 3
        first, second = present[:2]
        forged = copy.deepcopy(commit)
        signature = bytearray(base64.b64decode(forged["signed_header"]["commit"]["signatures"][first]["signature"]))
        signature[5] ^= 0x01
        forged["signed_header"]["commit"]["signatures"][first]["signature"] = base64.b64encode(bytes(signature)).decode()
        with pytest.raises(LightClientError, match=rf"signatures\[{first}\]: wrong signature"):
            _verify(client, account_key(sink), (response, forged, validators))
        later = copy.deepcopy(commit)  # a signature moved to another time no longer verifies either
        later["signed_header"]["commit"]["signatures"][second]["timestamp"] = "2030-01-01T00:00:00Z"
        with pytest.raises(LightClientError, match=rf"signatures\[{second}\]: wrong signature"):
            _verify(client, account_key(sink), (response, later, validators))


@pytest.mark.cometbft
@pytest.mark.slow
def test_invalid_too_little_voting_power(network):
    net, genesis, sink = network
    with _client(network) as client:
        response, commit, validators = _fetch(client, account_key(sink))
        # Two of four signatures dropped (marked absent): 20 of 40 power is not more than 2/3.
        thin = copy.deepcopy(commit)
        for sig in thin["signed_header"]["commit"]["signatures"][:2]:
            sig.update(block_id_flag=1, validator_address="", signature=None, timestamp="0001-01-01T00:00:00Z")
        with pytest.raises(LightClientError, match="more than 2/3 is needed"):
            _verify(client, account_key(sink), (response, thin, validators))
        # A node that claims the validators have more power than they do is caught by the header's hash.
        inflated = copy.deepcopy(validators)
        inflated[0]["voting_power"] = "1000"
        with pytest.raises(LightClientError, match="validators_hash"):
            _verify(client, account_key(sink), (response, commit, inflated))

    # A client that trusts other validators (another chain's genesis) believes none of it.
    strangers = ValidatorSet.from_keys([(PrivateKey.generate().public_key.key, 10) for _ in range(4)])
    with LightClient(net.node("validator1").rpc_url, net.chain_id, strangers) as client:
        with pytest.raises(LightClientError, match="trusted validators signed with 0 of 40"):
            client.get_verified(account_key(sink))
    # A trusted set of the four genesis validators and four strangers (80 power): the at least 30 that
    # sign are more than 1/3 of it, never more than the default 2/3.
    mixed = ValidatorSet(ValidatorSet.from_genesis(genesis).validators + strangers.validators)
    with LightClient(net.node("validator1").rpc_url, net.chain_id, mixed) as client:
        with pytest.raises(LightClientError, match=r"trusted validators signed with [34]0 of 80"):
            client.get_verified(account_key(sink))
    with LightClient(net.node("validator1").rpc_url, net.chain_id, mixed, trust_level=Fraction(1, 3)) as client:
        assert client.get_verified(account_key(sink)).value is not None
