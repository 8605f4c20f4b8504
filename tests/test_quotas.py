"""Spam limits of a feeless ledger: per-sender txs per window of blocks (a consensus rule), txs
pending in the mempool (admission), both governed parameters, and a device's own bound set by its
owner's spending policy; and bank transfers from a device account under the device's policy."""

from __future__ import annotations

import msgspec
import pytest

from helpers import assert_error_kind, make_chain
from test_devices import new_device
from test_identity_fixtures import City
from test_payments import Market, policy
from cityledger.app import abc
from cityledger.app.quotas import QUOTAS_PREFIX, forget_written, quota_key
from cityledger.core.accounts import account_key, get_nonce
from cityledger.core.encoding import encode
from cityledger.core.errors import ERR_QUOTA
from cityledger.core.keys import Signer, compute_address
from cityledger.modules.bank import MultiSend, Output, Transfer, get_balance
from cityledger.modules.bank.errors import ERR_INSUFFICIENT_FUNDS
from cityledger.modules.devices import get_device
from cityledger.modules.devices.handlers import get_account_device
from cityledger.modules.governance.messages import ParamChange
from cityledger.modules.payments import FreezeDevice
from cityledger.modules.payments import errors as E
from cityledger.modules.payments.quotas import DEVICE_TXS_PER_WINDOW, MAX_PENDING, TXS_PER_WINDOW, WINDOW_BLOCKS


def pay(chain, key, amount=1):
    return chain.tx(key, Transfer(chain.accounts[3].address(), amount))


# -- txs per window of blocks: a consensus rule ---------------------------------------------------

def test_invalid_tx_past_the_window_quota_changes_nothing_until_the_next_window(tmp_path):
    chain = make_chain(tmp_path, params={WINDOW_BLOCKS: 10, TXS_PER_WINDOW: 3})
    sender = chain.accounts[0]
    chain.block()  # height 1: the window of heights 0..9
    for _ in range(3):
        assert chain.block(pay(chain, sender)).tx_results[0].code == 0
    assert chain.height == 4
    over = pay(chain, sender)
    assert_error_kind(chain.app.check_tx(over), ERR_QUOTA)
    result = chain.block(over).tx_results[0]  # a proposer that includes it anyway: every validator refuses it
    assert_error_kind(result, ERR_QUOTA)
    assert "3 txs already sent" in result.log and "height 10" in result.log
    assert get_nonce(chain.store, sender.address()) == 3  # refused like a nonce gap: no nonce bump
    other = chain.accounts[1]  # the quota is per sender
    assert chain.block(pay(chain, other)).tx_results[0].code == 0
    while chain.height < 9:
        chain.block()
    assert chain.block(over).tx_results[0].code == 0  # height 10: a new window
    assert get_nonce(chain.store, sender.address()) == 4


def test_window_record_is_written_once_per_window_not_per_tx(tmp_path):
    chain = make_chain(tmp_path, params={WINDOW_BLOCKS: 100, TXS_PER_WINDOW: 1_000})
    sender = chain.accounts[0]
    key = quota_key(sender.address())
    chain.block(pay(chain, sender))
    first = chain.store.get(key)
    assert first is not None
    chain.block(pay(chain, sender), pay(chain, sender))
    assert chain.store.get(key) == first


def test_window_quota_off_writes_no_record(tmp_path):
    chain = make_chain(tmp_path, params={WINDOW_BLOCKS: 0})
    sender = chain.accounts[0]
    for _ in range(5):
        assert chain.block(pay(chain, sender)).tx_results[0].code == 0
    assert chain.store.get(quota_key(sender.address())) is None


def test_governance_changes_the_quota_from_the_next_window(tmp_path):
    city = City(tmp_path)
    assert city.vote_through(ParamChange(TXS_PER_WINDOW, 2)) == "executed"
    ledger, sender = city.ledger, city.chain.accounts[0]
    while (ledger.height() + 1) % 10:
        ledger.commit_block([])
    for _ in range(2):
        ledger.send([sender], [Transfer(city.chain.accounts[1].address(), 1)]).raise_for_error()
    assert_error_kind(ledger.send([sender], [Transfer(city.chain.accounts[1].address(), 1)]), ERR_QUOTA)


# -- txs pending in the mempool: admission -------------------------------------------------------

def test_invalid_new_tx_past_the_pending_quota_until_a_block_commits(tmp_path):
    chain = make_chain(tmp_path, params={MAX_PENDING: 2})
    sender = chain.accounts[0]
    first, second, third = pay(chain, sender), pay(chain, sender), pay(chain, sender)
    assert chain.app.check_tx(first).code == 0 and chain.app.check_tx(second).code == 0
    refused = chain.app.check_tx(third)
    assert_error_kind(refused, ERR_QUOTA)
    assert "2 txs already pending" in refused.log
    assert chain.app.check_tx(pay(chain, chain.accounts[1])).code == 0  # another sender is not held back
    chain.block(first, second)
    assert chain.app.check_tx(third).code == 0


# -- a device's quota and payments are its owner's policy ----------------------------------------

@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return Market(City(tmp_path_factory.mktemp("quota-market")))


def test_invalid_bank_transfer_from_a_device_outside_its_policy(market):
    market.next_day()
    vehicle, parking, stranger = market.vehicle, market.other.address(), market.payee.address()
    before = market.balance(vehicle)
    market.send(market.owner, policy(market, daily=1_000, per_counterparty=700, addresses=[parking])).raise_for_error()
    assert_error_kind(market.send(vehicle, Transfer(stranger, 10)), E.ERR_COUNTERPARTY)
    market.send(vehicle, Transfer(parking, 600)).raise_for_error()
    assert_error_kind(market.send(vehicle, Transfer(parking, 200)), E.ERR_COUNTERPARTY_CAP)
    # A multi-send is all or nothing: one output the policy refuses sends none.
    assert_error_kind(market.send(vehicle, MultiSend([Output(parking, 10), Output(stranger, 10)])),
                      E.ERR_COUNTERPARTY)
    assert market.balance(vehicle) == before - 600
    assert market.ledger.query("/payments/policy", device=market.vehicle_did,
                               time_ns=str(market.ledger.time_ns))["spent_today"] == 600
    market.send(market.owner, FreezeDevice(market.vehicle_did)).raise_for_error()
    assert_error_kind(market.send(vehicle, Transfer(parking, 1)), E.ERR_FROZEN)
    market.send(market.payer, Transfer(stranger, 1)).raise_for_error()  # an account of no device is free
    market.check()


def test_invalid_device_tx_past_its_owners_quota(market):
    market.next_day()
    ledger, vehicle = market.ledger, market.vehicle
    own = msgspec.structs.replace(policy(market, addresses=[market.other.address()]), max_txs_per_window=2)
    market.send(market.owner, own).raise_for_error()
    assert ledger.query("/payments/policy", device=market.vehicle_did)["max_txs_per_window"] == 2
    while (ledger.height() + 1) % 10:  # the device's next tx opens a window, and reads the policy then
        ledger.commit_block([])
    for _ in range(2):
        market.send(vehicle, Transfer(market.other.address(), 1)).raise_for_error()
    assert_error_kind(market.send(vehicle, Transfer(market.other.address(), 1)), ERR_QUOTA)
    market.send(market.payer, Transfer(market.other.address(), 1)).raise_for_error()


def test_invalid_policy_quota_out_of_range(market):
    for value in (-1, 1_000_000_001):
        outcome = market.send(market.owner, msgspec.structs.replace(policy(market), max_txs_per_window=value))
        assert_error_kind(outcome, E.ERR_INVALID)
        assert "max_txs_per_window" in outcome.log


def test_device_default_quota_is_the_governed_device_parameter(tmp_path):
    chain = make_chain(tmp_path, params={DEVICE_TXS_PER_WINDOW: 1, TXS_PER_WINDOW: 50})
    assert chain.app.params(chain.store).get(DEVICE_TXS_PER_WINDOW) == 1
    sender = chain.accounts[0]  # not a device: the chain's quota
    for _ in range(3):
        assert chain.block(pay(chain, sender)).tx_results[0].code == 0
    assert get_balance(chain.store, chain.accounts[3].address()) > 0


# -- the caches of the admission path leave every result as the state alone gives it -------------

def test_window_record_of_a_tx_whose_messages_fail_is_not_kept(tmp_path):
    # Such a tx keeps its nonce bump but not the window record its journal wrote: the sender's next
    # tx opens the window at its own nonce (a cache that kept the dropped record would count one more).
    chain = make_chain(tmp_path, params={WINDOW_BLOCKS: 10, TXS_PER_WINDOW: 2})
    sender, sink = chain.accounts[0], chain.accounts[3].address()
    too_much = chain.tx(sender, Transfer(sink, 2**61))
    results = chain.block(too_much, pay(chain, sender), pay(chain, sender), pay(chain, sender)).tx_results
    assert [r.code for r in results[1:3]] == [0, 0]
    assert_error_kind(results[0], ERR_INSUFFICIENT_FUNDS)
    assert_error_kind(results[3], ERR_QUOTA)
    assert get_nonce(chain.store, sender.address()) == 3


def test_check_state_sees_a_window_record_written_by_a_later_block_than_its_check(tmp_path):
    # A tx checked for height 9 (inside the window ending at 10) lands in block 10, which opens the
    # next window; a kept check state must then count from the record block 10 wrote.
    chain = make_chain(tmp_path, params={WINDOW_BLOCKS: 10, TXS_PER_WINDOW: 2})
    sender = chain.accounts[0]
    chain.block(pay(chain, sender))  # height 1: the window ending at height 10, one tx counted
    while chain.height < 8:
        chain.block()
    late = pay(chain, sender)
    assert chain.app.check_tx(late).code == 0  # for height 9
    for txs in ((), (late,)):  # blocks 9 and 10, each commit keeping the check state
        chain.height += 1
        chain.time_ns += 1_000_000_000
        request = abc.BlockRequest(height=chain.height, time_ns=chain.time_ns, txs=txs)
        assert all(r.code == 0 for r in chain.app.finalize_block(request).tx_results)
        chain.app.commit(keep_check_state=True)
    assert chain.app.check_tx(pay(chain, sender)).code == 0  # the second tx of the window 10..19
    assert_error_kind(chain.app.check_tx(pay(chain, sender)), ERR_QUOTA)


def test_device_registered_after_its_account_paid_passes_its_policy(market):
    device = new_device(0x72)
    market.send(market.payer, Transfer(device.address(), 1_000)).raise_for_error()
    market.send(device, Transfer(market.payee.address(), 1)).raise_for_error()  # no device yet: free
    market.fleet.register(device).raise_for_error()
    assert_error_kind(market.send(device, Transfer(market.payee.address(), 1)), E.ERR_NO_POLICY)
    market.check()


def test_account_device_index_agrees_with_the_registry(market):
    state, vehicle = market.ledger.store, market.vehicle
    record = get_device(state, market.vehicle_did)
    assert record is not None
    for _ in range(2):  # the first look-up fills the index, the second reads it
        assert get_account_device(state, vehicle.address(), vehicle.signer()) == record
        assert get_account_device(state, market.payer.address(), market.payer.signer()) is None
    shared = Signer(1, sorted([vehicle.public_key, market.payer.public_key], key=encode))  # no device's own account
    assert get_account_device(state, compute_address(shared), shared) is None
    assert get_account_device(state, vehicle.address(), None) is None  # a context with no tx signer


def test_forget_written_drops_exactly_the_senders_whose_records_a_block_wrote():
    senders = [bytes([i]) * 20 for i in range(4)]
    cache = {sender: (10, 0, 5, 5) for sender in senders}
    writes = sorted([(quota_key(senders[1]), b"\x00" * 32), (quota_key(senders[2]), None),
                     (account_key(senders[0]), b"\x00" * 16), (QUOTAS_PREFIX + b"\x7f", b""),
                     (b"\xff" + quota_key(senders[3]), b"")])  # around the collection: other keys stay
    forget_written(cache, writes)
    assert set(cache) == {senders[0], senders[3]}
