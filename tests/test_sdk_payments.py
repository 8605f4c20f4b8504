"""SDK payments: builders the app accepts, and the payee's VoucherTracker agreeing with the chain
on which vouchers count (the same pure function on both sides)."""

from __future__ import annotations

import pytest

from helpers import CHAIN_ID, make_chain
from cityledger import sdk
from cityledger.core.keys import PrivateKey
from cityledger.modules.bank import get_balance
from cityledger.modules.payments import get_channel, get_escrow
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY, NEXT_ESCROW_ID_KEY


@pytest.fixture
def chain(tmp_path):
    return make_chain(tmp_path)


def deliver(chain, raw: bytes) -> None:
    result = chain.block(raw).tx_results[0]
    assert result.code == 0, result.log


def test_payer_vouchers_accepted_by_the_tracker_redeem_on_chain(chain):
    payer, payee = chain.accounts[0], chain.accounts[1]
    nonce = {payer.address(): 0, payee.address(): 0}

    def next_nonce(key):
        nonce[key.address()] += 1
        return nonce[key.address()] - 1

    deliver(chain, sdk.open_channel(CHAIN_ID, payer, next_nonce(payer), payee.address(), 1_000, 3))
    channel_id = get_counter(chain.store, NEXT_CHANNEL_ID_KEY)
    tracker = sdk.VoucherTracker(CHAIN_ID, channel_id, payer.public_key, deposit=1_000)
    assert tracker.accept(sdk.Voucher.sign(payer, CHAIN_ID, channel_id, 300, 1)) == 300
    assert tracker.accept(sdk.Voucher.sign(payer, CHAIN_ID, channel_id, 450, 2)) == 150
    before = get_balance(chain.store, payee.address())
    deliver(chain, sdk.redeem_voucher(CHAIN_ID, payee, next_nonce(payee), tracker.newest))
    assert get_balance(chain.store, payee.address()) == before + 450
    deliver(chain, sdk.top_up_channel(CHAIN_ID, payer, next_nonce(payer), channel_id, 500))
    tracker.deposit = 1_500
    tracker.accept(sdk.Voucher.sign(payer, CHAIN_ID, channel_id, 1_200, 3))
    deliver(chain, sdk.close_channel(CHAIN_ID, payee, next_nonce(payee), channel_id, tracker.newest))
    assert get_balance(chain.store, payee.address()) == before + 1_200
    assert get_channel(chain.store, channel_id).status == "settled"
    deliver(chain, sdk.lock_escrow(CHAIN_ID, payer, next_nonce(payer), payee.address(), 5, chain.height + 5))
    escrow_id = get_counter(chain.store, NEXT_ESCROW_ID_KEY)
    deliver(chain, sdk.release_escrow(CHAIN_ID, payer, next_nonce(payer), escrow_id))
    assert get_escrow(chain.store, escrow_id) is None
    chain.app.check_invariants()


@pytest.mark.parametrize("scheme", [1, 2])
def test_invalid_vouchers_are_refused_by_the_tracker(scheme):
    payer = PrivateKey(scheme, b"\x21" * 32)
    tracker = sdk.VoucherTracker(CHAIN_ID, 4, payer.public_key, deposit=1_000)
    tracker.accept(sdk.Voucher.sign(payer, CHAIN_ID, 4, 500, 5))
    cases = {
        "nonce": sdk.Voucher.sign(payer, CHAIN_ID, 4, 600, 5),
        "amount": sdk.Voucher.sign(payer, CHAIN_ID, 4, 400, 6),
        "channel_id": sdk.Voucher.sign(payer, "other-city", 4, 600, 6),
    }
    cases["signature"] = sdk.Voucher(CHAIN_ID, 4, 600, 6, PrivateKey(scheme, b"\x22" * 32).sign(b"x"))
    over = sdk.Voucher.sign(payer, CHAIN_ID, 4, 1_001, 6)
    for field, voucher in list(cases.items()) + [("amount", over)]:
        with pytest.raises(sdk.VoucherError, match=field):
            tracker.accept(voucher)
    assert tracker.newest.amount == 500


def test_invalid_builder_arguments_name_the_field():
    key = PrivateKey(1, b"\x23" * 32)
    with pytest.raises(ValueError, match="payee"):
        sdk.lock_escrow(CHAIN_ID, key, 0, "city12", 1, 10)
    with pytest.raises(ValueError, match="addresses"):
        sdk.set_policy(CHAIN_ID, key, 0, "did:city:x", daily_cap=1, counterparty_cap=1, expiry_height=5,
                       addresses=("nope",))
    voucher = sdk.Voucher.sign(key, CHAIN_ID, 2, 1, 1)
    with pytest.raises(ValueError, match="voucher"):
        sdk.close_channel(CHAIN_ID, key, 0, 3, voucher)
