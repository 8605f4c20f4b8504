"""Storage: retention window of past heights, pruning of stale tree nodes, proofs at past heights."""

import pytest

from cityledger.core.tree import verify_proof
from cityledger.modules.bank import Transfer
from cityledger.modules.bank.keys import balance_key

from helpers import make_chain


def _node_count(store) -> int:
    return store._db().execute("SELECT COUNT(*) FROM nodes").fetchone()[0]


def test_past_heights_within_the_window_prove_and_older_ones_are_pruned(tmp_path):
    chain = make_chain(tmp_path)
    chain.store.retain_heights = 3
    alice, bob = chain.accounts[:2]
    counts = []
    for _ in range(12):
        chain.block(chain.tx(alice, Transfer(bob.address(), 1)))
        counts.append(_node_count(chain.store))
    key = balance_key(bob.address())
    for height in (10, 11, 12):
        value, proof, app_hash = chain.store.get_at(key, height)
        assert app_hash == chain.store.height_info(height).app_hash
        assert verify_proof(app_hash, key, value, proof)
        assert int.from_bytes(value, "big") == 1_000_000_000 + height
    with pytest.raises(LookupError, match="older than the retained window"):
        chain.store.get_at(key, 9)
    # Pruning keeps the node table bounded: the last counts stop growing with the height.
    assert counts[-1] == counts[-2] == counts[-3]
    assert chain.store.recompute_app_hash() == chain.store.height_info(12).app_hash


def test_nothing_is_pruned_inside_the_window(tmp_path):
    chain = make_chain(tmp_path)
    alice, bob = chain.accounts[:2]
    for _ in range(5):
        chain.block(chain.tx(alice, Transfer(bob.address(), 1)))
    key = balance_key(bob.address())
    for height in range(0, 6):
        value, proof, app_hash = chain.store.get_at(key, height)
        assert verify_proof(app_hash, key, value, proof)
