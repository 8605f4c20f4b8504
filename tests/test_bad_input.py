"""Bad input through the API: each rejected with a clear error naming the field, no state change,
the node still serving. One list of vectors drives both POST /txs and POST /txs/batch."""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import dataclass
from typing import Callable

import pytest

from cityledger.core.encoding import Message
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import MAX_TX_BYTES, build_tx
from cityledger.modules.bank import Transfer

from test_api_helpers import TestNode, make_node

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cityledger.api import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class Bogus(Message, tag="bogus/1.0/thing"):
    """A message type no module registers."""

    value: int


@dataclass(frozen=True)
class Vector:
    name: str
    make: Callable[[TestNode, PrivateKey], bytes]
    status: int
    code: str
    field: str  # the field the error names (the message starts with it, or names it)


def _transfer(tn: TestNode, nonce: int = 1, key: PrivateKey | None = None, chain_id: str | None = None,
              expiry_height: int = 0, amount: int = 5) -> bytes:
    return build_tx(chain_id or tn.chain_id, [key or tn.alice], nonce, [Transfer(tn.bob.address(), amount)],
                    expiry_height=expiry_height)


def _bad_signature(tn: TestNode, poor: PrivateKey) -> bytes:
    tx = bytearray(_transfer(tn))
    tx[-1] ^= 0x01  # the last byte of the encoding is the last byte of the signature
    return bytes(tx)


def _non_canonical(tn: TestNode, poor: PrivateKey) -> bytes:
    chain = tn.chain_id.encode()
    tx = _transfer(tn)
    fixstr = bytes([0xA0 | len(chain)]) + chain
    assert tx.count(fixstr) == 1
    return tx.replace(fixstr, b"\xd9" + bytes([len(chain)]) + chain)  # str8: same value, longer form


VECTORS = [
    Vector("random_bytes", lambda tn, poor: random.Random(7).randbytes(200), 400, "tx/1", "tx"),
    Vector("empty", lambda tn, poor: b"", 400, "tx/1", "tx"),
    Vector("truncated", lambda tn, poor: _transfer(tn)[:-10], 400, "tx/1", "tx"),
    Vector("oversize", lambda tn, poor: bytes(MAX_TX_BYTES + 1), 413, "tx/2", "tx"),
    Vector("bad_signature", _bad_signature, 400, "tx/4", "signatures"),
    Vector("wrong_chain_id", lambda tn, poor: _transfer(tn, chain_id="other-city-9"), 400, "tx/3", "body.chain_id"),
    Vector("replayed_nonce", lambda tn, poor: _transfer(tn, nonce=0, amount=6), 409, "tx/5", "body.nonce"),
    Vector("out_of_order_nonce", lambda tn, poor: _transfer(tn, nonce=5), 409, "tx/6", "body.nonce"),
    Vector("expired", lambda tn, poor: _transfer(tn, expiry_height=2), 400, "tx/7", "body.expiry_height"),
    Vector("insufficient_funds", lambda tn, poor: _transfer(tn, nonce=0, key=poor), 400, "bank/1", "amount"),
    Vector("unknown_message_type", lambda tn, poor: build_tx(tn.chain_id, [tn.alice], 1, [Bogus(1)]), 400, "tx/8",
           "body.messages"),
    Vector("non_canonical", _non_canonical, 400, "tx/13", "tx"),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A node at height 2: alice's nonce 0 is used (block 1), an empty block 2; and a key with no funds."""
    tn = make_node(tmp_path_factory.mktemp("bad-input"))
    with TestClient(create_app(tn.node)) as client:
        assert client.post("/txs", json={"tx": _transfer(tn, nonce=0).hex()}).json()["check"]["ok"]
        assert tn.node.engine.produce_block() == 1
        assert tn.node.engine.produce_block(allow_empty=True) == 2
        yield tn, client, PrivateKey.generate()
    tn.node.store.close()


def _snapshot(tn: TestNode, poor: PrivateKey) -> tuple:
    return (tn.node.store.last_height(), tn.app_hash(), tn.balance(tn.alice), tn.balance(tn.bob),
            tn.balance(poor), tn.node.engine.pending_count())


def _assert_unchanged(tn: TestNode, client, poor: PrivateKey, before: tuple) -> None:
    assert tn.node.engine.produce_block() is None  # nothing reached the mempool
    assert _snapshot(tn, poor) == before
    assert client.get("/health").status_code == 200
    assert client.get("/status").json()["app_hash"] == before[1].hex()


@pytest.mark.parametrize("vector", VECTORS, ids=[v.name for v in VECTORS])
def test_invalid_tx_is_rejected_with_a_named_field(setup, vector):
    tn, client, poor = setup
    before = _snapshot(tn, poor)
    answer = client.post("/txs", json={"tx": vector.make(tn, poor).hex()})
    assert answer.status_code == vector.status, answer.text
    error = answer.json()["error"]
    assert error["code"] == vector.code
    assert vector.field in error["message"], error
    assert error["codespace"] == vector.code.split("/")[0] and error["abci_code"] == int(vector.code.split("/")[1])
    assert error["name"] and len(error["tx_id"]) == 64
    _assert_unchanged(tn, client, poor, before)


def test_invalid_txs_in_a_batch_are_each_rejected(setup):
    tn, client, poor = setup
    before = _snapshot(tn, poor)
    body = client.post("/txs/batch", json={"txs": [v.make(tn, poor).hex() for v in VECTORS]}).json()
    assert body["accepted"] == 0 and body["rejected"] == len(VECTORS)
    for vector, result in zip(VECTORS, body["results"]):
        assert f"{result['codespace']}/{result['code']}" == vector.code, (vector.name, result)
        assert vector.field in result["log"], (vector.name, result)
    _assert_unchanged(tn, client, poor, before)


def test_random_garbage_never_breaks_the_node(setup):
    tn, client, poor = setup
    before = _snapshot(tn, poor)
    rng = random.Random(11)
    valid = bytearray(_transfer(tn))
    garbage = [rng.randbytes(rng.randint(0, 400)) for _ in range(300)]
    for _ in range(300):  # valid txs with a few bytes changed, some cut short
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] ^= rng.randint(1, 255)
        garbage.append(bytes(mutated[: rng.randint(1, len(mutated))]) if rng.random() < 0.3 else bytes(mutated))
    body = client.post("/txs/batch", json={"txs": [g.hex() for g in garbage]}).json()
    assert body["accepted"] == 0 and all(r["log"] for r in body["results"])
    for item in garbage[:20]:
        assert client.post("/txs", json={"tx": item.hex()}).status_code in (400, 409, 413)
    _assert_unchanged(tn, client, poor, before)


@pytest.mark.parametrize("payload, field", [
    ({"tx": "not base64 or hex!"}, "tx"),
    ({"tx": ["00"]}, "tx"),
    ({"txn": "00"}, "txn"),
    ({"tx": "00", "encoding": "rot13"}, "encoding"),
])
def test_malformed_bodies_name_the_field(setup, payload, field):
    tn, client, poor = setup
    before = _snapshot(tn, poor)
    answer = client.post("/txs", json=payload)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "api/invalid_body" and answer.json()["error"]["field"] == field
    _assert_unchanged(tn, client, poor, before)


def test_oversize_body_is_refused_before_reading_it(setup):
    tn, client, poor = setup
    before = _snapshot(tn, poor)
    answer = client.post("/txs", content=b'{"tx": "' + b"00" * (600 * 1024) + b'"}',
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "api/body_too_large"
    batch = client.post("/txs/batch", content=os.urandom(16), headers={"content-length": str(65 * 1024 * 1024)})
    assert batch.status_code == 413
    _assert_unchanged(tn, client, poor, before)
