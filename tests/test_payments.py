"""payments module through the real app: vouchers on both curves, channels with cheating payers
and payees, escrow, and device spending policies set by a device's owner (caps per block-time day,
allowed counterparties, expiry, freeze); the locked-funds and supply invariants after each story."""

from __future__ import annotations

import pytest

from helpers import CHAIN_ID, assert_error_kind
from test_devices import Fleet, new_device
from test_identity_fixtures import TODAY, City
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.bank import Transfer, get_balance
from cityledger.modules.bank.errors import ERR_INSUFFICIENT_FUNDS
from cityledger.modules.devices import compute_device_did
from cityledger.modules.payments import (
    DAY_NS,
    PAYMENTS_ACCOUNT,
    CloseChannel,
    DeclareCounterparty,
    FinalizeChannel,
    FreezeDevice,
    LockEscrow,
    OpenChannel,
    RedeemVoucher,
    RefundEscrow,
    ReleaseEscrow,
    SetPolicy,
    StartClose,
    TopUpChannel,
    compute_voucher_bytes,
    get_locked,
    sign_voucher,
    verify_voucher,
)
from cityledger.modules.payments import errors as E
from cityledger.modules.payments.handlers import get_counter
from cityledger.modules.payments.keys import NEXT_CHANNEL_ID_KEY, NEXT_ESCROW_ID_KEY
from cityledger.offchain.identity.types import CredentialType

DEVICE_REGISTRATION_TYPE = CredentialType("device-registration", "1.0",
                                          ("device_did", "owner_account", "registered_on"))


class Market:
    """A city with a funded payer and payee, a vehicle bound to its owner, and a charger whose
    operator declared itself a charging counterparty."""

    def __init__(self, city: City) -> None:
        self.city, self.ledger = city, city.ledger
        self.fleet = Fleet(city)
        self.payer, self.payee, self.other = city.chain.accounts[0], city.chain.accounts[1], city.chain.accounts[2]
        self.vehicle = new_device(0x70)
        self.fleet.register(self.vehicle).raise_for_error()
        self.vehicle_did = compute_device_did(self.vehicle.public_key)
        wallet = city.wallet()
        self.owner = self.fleet.owner(wallet, self.vehicle_did)
        self.fleet.bind(wallet, self.vehicle_did, self.owner).raise_for_error()
        self.charger = new_device(0x71, scheme=1)
        self.fleet.register(self.charger, kind="charger").raise_for_error()
        self.charger_did = compute_device_did(self.charger.public_key)
        self.operator = self._bind_charger()
        self.send(self.operator, DeclareCounterparty("charger", self.charger_did)).raise_for_error()
        for account in (self.vehicle, self.owner, self.operator):
            self.send(self.payer, Transfer(account.address(), 10_000_000)).raise_for_error()

    def _bind_charger(self) -> PrivateKey:
        office = self.city.office("devreg", 0x43, DEVICE_REGISTRATION_TYPE)
        wallet = self.city.wallet()
        operator = wallet.account("charger")
        values = {"device_did": self.charger_did, "owner_account": address_to_str(operator.address()),
                  "registered_on": TODAY}
        self.city.issue(office, wallet, "device-registration", values, "CHG-1")
        self.fleet.bind(wallet, self.charger_did, operator).raise_for_error()
        return operator

    def send(self, key: PrivateKey, *messages):
        return self.ledger.send([key], list(messages))

    def balance(self, key_or_address) -> int:
        address = key_or_address if isinstance(key_or_address, bytes) else key_or_address.address()
        return get_balance(self.ledger.store, address)

    def open(self, payer: PrivateKey, payee: PrivateKey, deposit: int, settle_delay: int = 3) -> int:
        self.send(payer, OpenChannel(payee.address(), deposit, settle_delay, payer.public_key)).raise_for_error()
        return get_counter(self.ledger.store, NEXT_CHANNEL_ID_KEY)

    def lock(self, payer: PrivateKey, payee: bytes, amount: int, timeout: int = 3):
        return self.send(payer, LockEscrow(payee, amount, self.ledger.height() + 1 + timeout))

    def voucher(self, payer: PrivateKey, channel_id: int, amount: int, nonce: int, chain_id: str = CHAIN_ID):
        return amount, nonce, sign_voucher(payer, chain_id, channel_id, amount, nonce)

    def redeem(self, channel_id: int, amount: int, nonce: int, signature: bytes, payee=None):
        return self.send(payee or self.payee, RedeemVoucher(channel_id, amount, nonce, signature))

    def check(self) -> None:
        self.ledger.app.check_invariants()
        store = self.ledger.store
        assert self.balance(PAYMENTS_ACCOUNT) == get_locked(store)

    def next_day(self) -> None:
        self.ledger.time_ns += DAY_NS


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return Market(City(tmp_path_factory.mktemp("market")))


# -- vouchers: one pure function for chain and payee ----------------------------------------------

@pytest.mark.parametrize("scheme", [1, 2])
def test_voucher_verifies_only_for_its_exact_values(scheme):
    key = PrivateKey(scheme, bytes([0x33]) * 32)
    signature = sign_voucher(key, CHAIN_ID, 7, 1_500, 3)
    assert verify_voucher(key.public_key, CHAIN_ID, 7, 1_500, 3, signature)
    for changed in (("other-city", 7, 1_500, 3), (CHAIN_ID, 8, 1_500, 3), (CHAIN_ID, 7, 1_501, 3),
                    (CHAIN_ID, 7, 1_500, 4)):
        assert not verify_voucher(key.public_key, *changed, signature)
    assert not verify_voucher(PrivateKey(scheme, bytes([0x34]) * 32).public_key, CHAIN_ID, 7, 1_500, 3, signature)
    assert compute_voucher_bytes(CHAIN_ID, 7, 1_500, 3).startswith(b"cityledger/payments-voucher/1\x00")


# -- channels -------------------------------------------------------------------------------------

def test_redeem_takes_the_difference_and_close_settles_at_once(market):
    payer, payee = market.payer, market.payee
    before_payer, before_payee, locked = market.balance(payer), market.balance(payee), get_locked(market.ledger.store)
    channel = market.open(payer, payee, 1_000)
    assert market.balance(payer) == before_payer - 1_000
    market.redeem(channel, *market.voucher(payer, channel, 300, 1)).raise_for_error()
    market.redeem(channel, *market.voucher(payer, channel, 500, 2)).raise_for_error()
    assert market.balance(payee) == before_payee + 500
    state = market.ledger.query("/payments/channel", id=str(channel))
    assert (state["status"], state["redeemed"], state["balance"], state["nonce"]) == ("open", 500, 500, 2)
    market.send(payee, CloseChannel(channel, *market.voucher(payer, channel, 700, 3))).raise_for_error()
    assert market.balance(payee) == before_payee + 700
    assert market.balance(payer) == before_payer - 700
    assert get_locked(market.ledger.store) == locked
    assert market.ledger.query("/payments/channel", id=str(channel))["status"] == "settled"
    market.check()


def test_invalid_old_voucher_and_voucher_over_deposit(market):
    channel = market.open(market.payer, market.payee, 1_000)
    market.redeem(channel, *market.voucher(market.payer, channel, 400, 5)).raise_for_error()
    assert_error_kind(market.redeem(channel, *market.voucher(market.payer, channel, 300, 4)), E.ERR_STALE_VOUCHER)
    assert_error_kind(market.redeem(channel, *market.voucher(market.payer, channel, 600, 5)), E.ERR_STALE_VOUCHER)
    assert_error_kind(market.redeem(channel, *market.voucher(market.payer, channel, 350, 6)), E.ERR_STALE_VOUCHER)
    assert_error_kind(market.redeem(channel, *market.voucher(market.payer, channel, 1_001, 6)), E.ERR_OVER_DEPOSIT)
    state = market.ledger.query("/payments/channel", id=str(channel))
    assert (state["redeemed"], state["nonce"]) == (400, 5)
    market.check()


def test_invalid_voucher_for_another_channel_chain_or_signer(market):
    first = market.open(market.payer, market.payee, 1_000)
    second = market.open(market.payer, market.payee, 1_000)
    before = market.balance(market.payee)
    amount, nonce, for_first = market.voucher(market.payer, first, 200, 1)
    assert_error_kind(market.redeem(second, amount, nonce, for_first), E.ERR_BAD_VOUCHER)
    assert_error_kind(market.redeem(first, *market.voucher(market.payer, first, 200, 1, "other-city")),
                      E.ERR_BAD_VOUCHER)
    assert_error_kind(market.redeem(first, *market.voucher(market.other, first, 200, 1)), E.ERR_BAD_VOUCHER)
    assert_error_kind(market.redeem(first, 200, 1, bytes(64)), E.ERR_BAD_VOUCHER)
    assert_error_kind(market.redeem(first, 200, 1, for_first, payee=market.other), E.ERR_NOT_PARTY)
    assert market.balance(market.payee) == before
    market.redeem(first, amount, nonce, for_first).raise_for_error()
    market.check()


def test_invalid_replay_after_settlement(market):
    channel = market.open(market.payer, market.payee, 1_000)
    voucher = market.voucher(market.payer, channel, 900, 2)
    market.send(market.payee, CloseChannel(channel, 0, 0, b"")).raise_for_error()
    before = market.balance(market.payee)
    assert_error_kind(market.redeem(channel, *voucher), E.ERR_SETTLED)
    assert_error_kind(market.send(market.payee, CloseChannel(channel, *voucher)), E.ERR_SETTLED)
    assert_error_kind(market.send(market.payer, TopUpChannel(channel, 10)), E.ERR_SETTLED)
    assert market.balance(market.payee) == before
    assert_error_kind(market.redeem(10**6, *voucher), E.ERR_UNKNOWN_CHANNEL)
    market.check()


def test_payer_closing_early_loses_to_the_payees_newer_voucher(market):
    payer, payee = market.payer, market.payee
    channel = market.open(payer, payee, 1_000, settle_delay=6)
    market.redeem(channel, *market.voucher(payer, channel, 100, 1)).raise_for_error()
    newest = market.voucher(payer, channel, 800, 2)
    before_payer, before_payee = market.balance(payer), market.balance(payee)
    market.send(payer, StartClose(channel)).raise_for_error()
    assert_error_kind(market.send(payer, FinalizeChannel(channel)), E.ERR_TOO_EARLY)
    assert_error_kind(market.send(payer, TopUpChannel(channel, 50)), E.ERR_CLOSING)
    assert_error_kind(market.send(payer, StartClose(channel)), E.ERR_CLOSING)
    market.redeem(channel, *newest).raise_for_error()  # in the window
    while market.ledger.height() + 1 < market.ledger.query("/payments/channel", id=str(channel))["closing_height"]:
        market.send(market.other, Transfer(market.other.address(), 1)).raise_for_error()
    assert_error_kind(market.redeem(channel, *market.voucher(payer, channel, 900, 3)), E.ERR_WINDOW_CLOSED)
    assert_error_kind(market.send(market.other, FinalizeChannel(channel)), E.ERR_NOT_PARTY)
    market.send(payer, FinalizeChannel(channel)).raise_for_error()
    assert market.balance(payee) == before_payee + 700
    assert market.balance(payer) == before_payer + 200
    market.check()


def test_top_up_adds_to_the_deposit(market):
    channel = market.open(market.payer, market.payee, 100)
    assert_error_kind(market.redeem(channel, *market.voucher(market.payer, channel, 150, 1)), E.ERR_OVER_DEPOSIT)
    assert_error_kind(market.send(market.payee, TopUpChannel(channel, 100)), E.ERR_NOT_PARTY)
    market.send(market.payer, TopUpChannel(channel, 100)).raise_for_error()
    market.redeem(channel, *market.voucher(market.payer, channel, 150, 1)).raise_for_error()
    assert market.ledger.query("/payments/channel", id=str(channel))["deposit"] == 200
    market.check()


@pytest.mark.parametrize("field, change", [
    ("deposit", {"deposit": 0}), ("settle_delay", {"settle_delay": 1}), ("settle_delay", {"settle_delay": 10**9}),
    ("payee", {"payee": b"\x01" * 19}), ("payee", {"payee": PAYMENTS_ACCOUNT}), ("voucher_key", {"voucher_key": PrivateKey(1, b"\x55" * 32).public_key}),
])
def test_invalid_open_channel_fields(market, field, change):
    values = {"payee": market.payee.address(), "deposit": 100, "settle_delay": 3,
              "voucher_key": market.payer.public_key} | change
    outcome = market.send(market.payer, OpenChannel(**values))
    assert_error_kind(outcome, E.ERR_INVALID)
    assert field in outcome.log


def test_invalid_open_channel_beyond_balance(market):
    poor = PrivateKey(1, b"\x56" * 32)
    market.send(market.payer, Transfer(poor.address(), 50)).raise_for_error()
    assert_error_kind(market.send(poor, OpenChannel(market.payee.address(), 100, 3, poor.public_key)),
                      ERR_INSUFFICIENT_FUNDS)


# -- escrow ---------------------------------------------------------------------------------------

def test_escrow_release_and_refund_after_timeout(market):
    payer, payee = market.payer, market.payee
    before_payer, before_payee = market.balance(payer), market.balance(payee)
    market.lock(payer, payee.address(), 300).raise_for_error()
    released = get_counter(market.ledger.store, NEXT_ESCROW_ID_KEY)
    assert market.ledger.query("/payments/escrow", id=str(released))["amount"] == 300
    assert_error_kind(market.send(payee, ReleaseEscrow(released)), E.ERR_NOT_PARTY)
    market.send(payer, ReleaseEscrow(released)).raise_for_error()
    assert market.balance(payee) == before_payee + 300
    assert_error_kind(market.send(payer, ReleaseEscrow(released)), E.ERR_UNKNOWN_ESCROW)
    market.lock(payer, payee.address(), 200, timeout=2).raise_for_error()
    refunded = get_counter(market.ledger.store, NEXT_ESCROW_ID_KEY)
    assert_error_kind(market.send(payer, RefundEscrow(refunded)), E.ERR_TOO_EARLY)
    market.send(market.other, Transfer(market.other.address(), 1)).raise_for_error()
    market.send(payer, RefundEscrow(refunded)).raise_for_error()
    assert market.balance(payer) == before_payer - 300
    with pytest.raises(LookupError):
        market.ledger.query("/payments/escrow", id=str(refunded))
    market.check()


@pytest.mark.parametrize("timeout", [0, 10**7])
def test_invalid_escrow_timeout(market, timeout):
    outcome = market.send(market.payer, LockEscrow(market.payee.address(), 10, timeout))
    assert_error_kind(outcome, E.ERR_INVALID)
    assert "timeout_height" in outcome.log


# -- device spending policies ---------------------------------------------------------------------

def policy(market, daily=1_000, per_counterparty=800, kinds=("charger",), addresses=(), expiry=None) -> SetPolicy:
    expiry = market.ledger.height() + 1_000 if expiry is None else expiry
    return SetPolicy(market.vehicle_did, daily, per_counterparty, list(kinds), sorted(addresses), expiry)


def test_invalid_device_payment_without_policy_or_from_non_owner(market):
    market.next_day()
    fresh = PrivateKey(2, bytes([0x79]) * 32)
    market.fleet.register(fresh).raise_for_error()
    market.send(market.payer, Transfer(fresh.address(), 1_000)).raise_for_error()
    assert_error_kind(market.send(fresh, OpenChannel(market.operator.address(), 10, 3, fresh.public_key)),
                      E.ERR_NO_POLICY)
    assert_error_kind(market.send(market.payer, policy(market)), E.ERR_NOT_OWNER)
    unknown = SetPolicy("did:city:nothing", 1, 1, [], [], market.ledger.height() + 5)
    assert_error_kind(market.send(market.owner, unknown), E.ERR_UNKNOWN_DEVICE)
    outcome = market.send(market.owner, policy(market, kinds=("toll", "charger")))
    assert_error_kind(outcome, E.ERR_INVALID)
    assert "kinds" in outcome.log


def test_device_pays_within_its_daily_caps_in_block_time(market):
    market.next_day()
    parking = market.other.address()
    market.send(market.owner, policy(market, addresses=[parking])).raise_for_error()
    vehicle, operator = market.vehicle, market.operator
    channel = market.open(vehicle, operator, 500)
    assert_error_kind(market.send(vehicle, TopUpChannel(channel, 400)), E.ERR_COUNTERPARTY_CAP)
    market.lock(vehicle, parking, 400).raise_for_error()
    assert_error_kind(market.lock(vehicle, parking, 200), E.ERR_DAILY_CAP)
    assert_error_kind(market.lock(vehicle, market.payee.address(), 10), E.ERR_COUNTERPARTY)
    answer = market.ledger.query("/payments/policy", device=market.vehicle_did, time_ns=str(market.ledger.time_ns))
    assert answer["spent_today"] == 900 and answer["current"] and answer["kinds"] == ["charger"]
    market.next_day()  # a new block-time day: the caps start over
    market.lock(vehicle, parking, 200).raise_for_error()
    market.send(vehicle, TopUpChannel(channel, 400)).raise_for_error()
    market.check()


def test_invalid_payment_from_a_frozen_device_until_a_new_policy(market):
    market.next_day()
    market.send(market.owner, policy(market)).raise_for_error()
    channel = market.open(market.vehicle, market.operator, 100)
    assert_error_kind(market.send(market.payer, FreezeDevice(market.vehicle_did)), E.ERR_NOT_OWNER)
    market.send(market.owner, FreezeDevice(market.vehicle_did)).raise_for_error()
    assert market.ledger.query("/payments/policy", device=market.vehicle_did)["frozen"] is True
    assert_error_kind(market.send(market.vehicle, TopUpChannel(channel, 10)), E.ERR_FROZEN)
    assert_error_kind(market.send(market.vehicle, OpenChannel(market.operator.address(), 10, 3,
                                                              market.vehicle.public_key)), E.ERR_FROZEN)
    # The payee still redeems what the vehicle already signed: the deposit was spent before the freeze.
    market.redeem(channel, *market.voucher(market.vehicle, channel, 60, 1), payee=market.operator).raise_for_error()
    market.send(market.owner, policy(market)).raise_for_error()
    market.send(market.vehicle, TopUpChannel(channel, 10)).raise_for_error()
    market.check()


def test_invalid_payment_after_the_policy_expires(market):
    market.next_day()
    expiry = market.ledger.height() + 2
    market.send(market.owner, policy(market, expiry=expiry)).raise_for_error()
    market.open(market.vehicle, market.operator, 10)
    assert market.ledger.height() == expiry
    assert_error_kind(market.send(market.vehicle, OpenChannel(market.operator.address(), 10, 3,
                                                              market.vehicle.public_key)), E.ERR_POLICY_EXPIRED)


def test_counterparty_kind_needs_an_owned_device_of_that_kind(market):
    assert market.ledger.query("/payments/counterparty", address=address_to_str(market.operator.address()))["kind"] \
        == "charger"
    assert_error_kind(market.send(market.owner, DeclareCounterparty("charger", market.vehicle_did)), E.ERR_INVALID)
    assert_error_kind(market.send(market.payee, DeclareCounterparty("charger", market.charger_did)), E.ERR_NOT_OWNER)
    assert_error_kind(market.send(market.operator, DeclareCounterparty("ferry", market.charger_did)), E.ERR_INVALID)


@pytest.mark.parametrize("path, args", [
    ("/payments/channel", {"id": "x"}), ("/payments/channel", {"id": "-1"}), ("/payments/escrow", {}),
    ("/payments/counterparty", {"address": "nope"}),
])
def test_invalid_query_arguments(market, path, args):
    with pytest.raises(ValueError):
        market.ledger.query(path, **args)


def test_queries_of_missing_records(market):
    for path, args in (("/payments/channel", {"id": "999999"}), ("/payments/policy", {"device": "did:city:x"})):
        with pytest.raises(LookupError):
            market.ledger.query(path, **args)
    assert market.ledger.query("/payments/locked")["account"] == address_to_str(PAYMENTS_ACCOUNT)


def test_voucher_bench_prints_both_rates_on_its_last_line():
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "bench" / "payments_vouchers.py"), "--samples", "40",
                           "--curve", "p256"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(root / "src")})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(result["ratio"]) == ["p256"] and result["samples"] == 40
    vouchers, signatures = result["vouchers_verified_per_s"]["p256"], result["signature_verify_per_s"]["p256"]
    assert vouchers > 0 and signatures > 0
    assert abs(result["ratio"]["p256"] - vouchers / signatures) < 0.01


def test_invalid_bank_keeper_sends_name_the_field_and_write_nothing():
    from cityledger.core.errors import TxError
    from cityledger.core.state import DictState, Overlay
    from cityledger.modules.bank.errors import ERR_INVALID_ADDRESS, ERR_INVALID_AMOUNT
    from cityledger.modules.bank.keeper import KEEPER

    state = Overlay(DictState())
    alice, bob = b"\x01" * 20, b"\x02" * 20
    cases = ((alice, bob, 1, ERR_INSUFFICIENT_FUNDS), (alice, b"\x02", 1, ERR_INVALID_ADDRESS),
             (alice, bob, 0, ERR_INVALID_AMOUNT), (alice, bob, 2**63, ERR_INVALID_AMOUNT))
    for sender, recipient, amount, kind in cases:
        with pytest.raises(TxError) as refused:
            KEEPER.send(state, sender, recipient, amount)
        assert_error_kind(refused.value, kind)
    assert state.writes == {}
