"""Solo engine: bounded mempool, per-sender quota, dedup, block limits, recheck, no empty blocks."""

from cityledger.core.accounts import ACCOUNTS_PREFIX, account_key, decode_account
from cityledger.core.errors import ERR_DUPLICATE, ERR_MEMPOOL_FULL, ERR_QUOTA
from cityledger.engines.solo.engine import SoloConfig, SoloEngine
from cityledger.engines.solo.mempool import MempoolConfig
from cityledger.modules.bank import Transfer, get_balance

from helpers import GENESIS_BALANCE, assert_error_kind, make_chain


def make_engine(tmp_path, **mempool):
    chain = make_chain(tmp_path)
    config = SoloConfig(max_block_txs=5, mempool=MempoolConfig(**{"max_txs": 100, "sender_quota": 10, **mempool}))
    return chain, SoloEngine(chain.app, config)


def test_blocks_respect_limits_and_keep_nonce_order(tmp_path):
    chain, engine = make_engine(tmp_path)
    alice, bob = chain.accounts[:2]
    results = engine.submit_batch([chain.tx(alice, Transfer(bob.address(), 1)) for _ in range(8)])
    assert all(r.result.ok for r in results)
    assert engine.produce_block() == 1 and len(engine.mempool) == 3
    assert engine.produce_block() == 2 and len(engine.mempool) == 0
    assert chain.store.get_block(1).txs == [chain_tx for chain_tx in chain.store.get_block(1).txs][:5]
    assert len(chain.store.get_block(1).txs) == 5
    assert get_balance(chain.store, bob.address()) == GENESIS_BALANCE + 8
    assert engine.wait_for_tx(results[-1].tx_id, 0.1) == (2, 2)


def test_no_empty_blocks_unless_asked(tmp_path):
    chain, engine = make_engine(tmp_path)
    assert engine.produce_block() is None
    assert engine.produce_block(allow_empty=True) == 1


def test_invalid_duplicate_and_quota_and_full(tmp_path):
    chain, engine = make_engine(tmp_path, max_txs=12, sender_quota=10)
    alice, bob, carol = chain.accounts[:3]
    txs = [chain.tx(alice, Transfer(bob.address(), 1)) for _ in range(11)]
    results = engine.submit_batch(txs)
    assert [r.result.ok for r in results] == [True] * 10 + [False]
    assert_error_kind(results[-1].result, ERR_QUOTA)
    assert "quota" in results[-1].result.log
    duplicate = engine.submit(txs[0])
    assert_error_kind(duplicate.result, ERR_DUPLICATE)
    assert "already in the mempool" in duplicate.result.log
    engine.submit(chain.tx(carol, Transfer(bob.address(), 1)))
    engine.submit(chain.tx(carol, Transfer(bob.address(), 1)))
    full = engine.submit(chain.tx(carol, Transfer(bob.address(), 1)))
    assert_error_kind(full.result, ERR_MEMPOOL_FULL)
    assert "full" in full.result.log


def test_recheck_drops_txs_made_invalid_by_a_block(tmp_path):
    chain, engine = make_engine(tmp_path)
    engine.config.max_block_txs = 1
    alice, bob, carol = chain.accounts[:3]
    pending = [chain.tx(alice, Transfer(bob.address(), 1)) for _ in range(2)]
    assert all(r.result.ok for r in engine.submit_batch(pending))
    # Rival txs with the same nonces reach a block first (as from another node's mempool).
    chain.nonces[alice.address()] = 0
    chain.block(*[chain.tx(alice, Transfer(carol.address(), 1)) for _ in range(2)])
    assert engine.produce_block() == 2
    assert chain.store.get_block(2).results[0].code == 5  # the included one fails: nonce replayed
    assert len(engine.mempool) == 0  # the other was dropped by the recheck, not kept forever


def test_ttl_eviction(tmp_path):
    chain, engine = make_engine(tmp_path, ttl_blocks=1)
    alice, bob, carol = chain.accounts[:3]
    engine.config.max_block_txs = 1
    for _ in range(3):
        engine.submit(chain.tx(alice, Transfer(bob.address(), 1)))
    engine.produce_block()
    engine.submit(chain.tx(carol, Transfer(bob.address(), 1)))
    engine.produce_block()
    engine.produce_block()
    assert len(engine.mempool) == 0  # alice's third tx waited more than one block and was evicted


def test_kept_check_state_matches_a_full_recheck(tmp_path):
    chain, engine = make_engine(tmp_path)
    alice, bob = chain.accounts[:2]
    engine.submit_batch([chain.tx(alice, Transfer(bob.address(), 1)) for _ in range(8)])
    engine.produce_block()  # five included, three still pending on top of the kept check state
    assert engine.submit(chain.tx(alice, Transfer(bob.address(), 1))).result.ok  # nonce 8 follows the pending 7
    replay = engine.submit(chain.tx(alice, Transfer(bob.address(), 2), nonce=6))
    assert replay.result.code == 5
    kept = dict(chain.app._check_state.writes)
    chain.app.reset_check_state()
    engine._recheck()
    # A recheck re-validates nonces only (the block is authoritative for the rest): the pending
    # nonces it rebuilds are exactly the ones the kept check state holds.
    rebuilt = chain.app._check_state.writes

    def pending_nonces(writes):
        accounts = {k: decode_account(v) for k, v in writes.items() if k.startswith(ACCOUNTS_PREFIX)}
        return {k: account.nonce for k, account in accounts.items() if account.nonce}

    assert pending_nonces(rebuilt) == pending_nonces(kept) == {account_key(alice.address()): 9}
    while engine.produce_block():
        pass
    assert get_balance(chain.store, bob.address()) == GENESIS_BALANCE + 9
