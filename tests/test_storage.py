"""Storage: retention window of past heights, pruning of stale tree nodes, proofs at past heights."""

import pytest

from cityledger.core.tree import verify_proof
from cityledger.modules.bank import Transfer
from cityledger.core.accounts import account_key, decode_account

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
    key = account_key(bob.address())
    for height in (10, 11, 12):
        value, proof, app_hash = chain.store.get_at(key, height)
        assert app_hash == chain.store.height_info(height).app_hash
        assert verify_proof(app_hash, key, value, proof)
        assert decode_account(value).balance == 1_000_000_000 + height
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
    key = account_key(bob.address())
    for height in range(0, 6):
        value, proof, app_hash = chain.store.get_at(key, height)
        assert verify_proof(app_hash, key, value, proof)


def test_a_read_racing_a_commit_never_leaves_a_stale_value_in_the_cache(tmp_path):
    """A reader that fetched a value just before a block committed must not cache it after the commit.

    The reader's SELECT is made to return only once a whole block (which changes that key) has
    been committed by another thread: the worst interleaving, forced."""
    import threading

    chain = make_chain(tmp_path)
    alice, bob = chain.accounts[:2]
    key = account_key(bob.address())
    store = chain.store
    store._cache.pop(key, None)
    before = store.get(key)
    store._cache.pop(key, None)

    real_db = store._db()

    class CommitDuringSelect:
        def execute(self, sql, params=()):
            rows = real_db.execute(sql, params).fetchall()
            if sql.startswith("SELECT value FROM state"):
                writer = threading.Thread(target=chain.block, args=(chain.tx(alice, Transfer(bob.address(), 7)),))
                writer.start()
                writer.join()
            return _Rows(rows)

    class _Rows(list):
        def fetchone(self):
            return self[0] if self else None

    store._local.db = CommitDuringSelect()
    try:
        assert store.get(key) == before  # the value as of the previous block: fine for that read
    finally:
        store._local.db = real_db
    assert decode_account(store.get(key)).balance == decode_account(before).balance + 7
