"""Bank through the app: transfers, multi-send, refusals leave no trace, supply invariant."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityledger.core.accounts import get_nonce
from cityledger.core.errors import ERR_EXPIRED, ERR_NONCE_GAP, ERR_NONCE_REPLAY, InvariantBroken
from cityledger.modules.bank import MultiSend, Output, Transfer, get_balance
from cityledger.modules.bank.errors import ERR_INSUFFICIENT_FUNDS, ERR_INVALID_ADDRESS, ERR_INVALID_AMOUNT
from cityledger.modules.bank.keys import SUPPLY_KEY

from helpers import GENESIS_BALANCE, assert_error_kind, make_chain


def test_transfer_moves_funds(chain):
    alice, bob = chain.accounts[:2]
    result = chain.block(chain.tx(alice, Transfer(bob.address(), 250)))
    assert result.tx_results[0].ok
    assert get_balance(chain.store, alice.address()) == GENESIS_BALANCE - 250
    assert get_balance(chain.store, bob.address()) == GENESIS_BALANCE + 250
    assert get_nonce(chain.store, alice.address()) == 1
    event = result.tx_results[0].events[0]
    assert event.type == "transfer" and ("amount", "250") in event.attributes


def test_multi_send(chain):
    alice, bob, carol = chain.accounts[:3]
    chain.block(chain.tx(alice, MultiSend([Output(bob.address(), 1), Output(carol.address(), 2)])))
    assert get_balance(chain.store, bob.address()) == GENESIS_BALANCE + 1
    assert get_balance(chain.store, carol.address()) == GENESIS_BALANCE + 2


def test_invalid_insufficient_funds_changes_nothing_but_the_nonce(chain):
    alice, bob = chain.accounts[:2]
    before = chain.store.height_info(chain.store.last_height()).app_hash
    check = chain.app.check_tx(chain.tx(alice, Transfer(bob.address(), GENESIS_BALANCE + 1), nonce=0))
    assert_error_kind(check, ERR_INSUFFICIENT_FUNDS)
    assert "exceeds the sender's balance" in check.log
    result = chain.block(chain.tx(alice, Transfer(bob.address(), GENESIS_BALANCE + 1), nonce=0))
    assert_error_kind(result.tx_results[0], ERR_INSUFFICIENT_FUNDS)
    assert get_balance(chain.store, alice.address()) == GENESIS_BALANCE
    assert get_nonce(chain.store, alice.address()) == 1  # replay protection holds for failed txs too
    assert before != chain.store.height_info(chain.store.last_height()).app_hash


def test_invalid_multi_send_is_all_or_nothing(chain):
    alice, bob = chain.accounts[:2]
    outputs = [Output(bob.address(), GENESIS_BALANCE - 10), Output(bob.address(), 20)]
    result = chain.block(chain.tx(alice, MultiSend(outputs)))
    assert_error_kind(result.tx_results[0], ERR_INSUFFICIENT_FUNDS)
    assert get_balance(chain.store, bob.address()) == GENESIS_BALANCE


@pytest.mark.parametrize("amount, field", [(0, "transfer.amount"), (-5, "transfer.amount")])
def test_invalid_amount(chain, amount, field):
    alice, bob = chain.accounts[:2]
    check = chain.app.check_tx(chain.tx(alice, Transfer(bob.address(), amount), nonce=0))
    assert_error_kind(check, ERR_INVALID_AMOUNT)
    assert field in check.log


def test_invalid_address_length(chain):
    check = chain.app.check_tx(chain.tx(chain.accounts[0], Transfer(b"\x01" * 19, 1), nonce=0))
    assert_error_kind(check, ERR_INVALID_ADDRESS)
    assert "20-byte address" in check.log


def test_invalid_replay_and_gap_and_expiry(chain):
    alice, bob = chain.accounts[:2]
    first = chain.tx(alice, Transfer(bob.address(), 1))
    chain.block(first)
    replay = chain.app.check_tx(first)
    assert_error_kind(replay, ERR_NONCE_REPLAY)
    assert "already used" in replay.log
    gap = chain.app.check_tx(chain.tx(alice, Transfer(bob.address(), 1), nonce=5))
    assert_error_kind(gap, ERR_NONCE_GAP)
    assert "expected 1, got 5" in gap.log
    expired = chain.app.check_tx(chain.tx(alice, Transfer(bob.address(), 1), nonce=1, expiry_height=1))
    assert_error_kind(expired, ERR_EXPIRED)
    assert "expired" in expired.log
    in_block = chain.block(first)
    assert_error_kind(in_block.tx_results[0], ERR_NONCE_REPLAY)


def test_supply_invariant_detects_corruption(chain):
    chain.app.check_invariants()
    chain.store._db().execute("UPDATE state SET value=? WHERE key=?", ((1).to_bytes(8, "big"), SUPPLY_KEY))
    chain.store._cache.clear()
    with pytest.raises(InvariantBroken):
        chain.app.check_invariants()


ops = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(-2, GENESIS_BALANCE * 2),
                         st.booleans()), min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, block_size=st.integers(1, 8))
def test_supply_equals_sum_of_balances_under_random_txs(tmp_path_factory, ops, block_size):
    chain = make_chain(tmp_path_factory.mktemp("chain"))
    txs = []
    for sender, receiver, amount, multi in ops:
        to = chain.accounts[receiver].address()
        message = MultiSend([Output(to, amount), Output(to, 1)]) if multi else Transfer(to, amount)
        txs.append(chain.tx(chain.accounts[sender], message))
    for start in range(0, len(txs), block_size):
        chain.block(*txs[start:start + block_size])
        chain.app.check_invariants()
    assert chain.store.recompute_app_hash() == chain.store.height_info(chain.height).app_hash
