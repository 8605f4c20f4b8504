"""Account records: one state key per address holding (nonce, balance)."""

import pytest

from cityledger.core.accounts import get_nonce
from cityledger.core.accounts import (
    ACCOUNTS_PREFIX,
    Account,
    account_key,
    decode_account,
    encode_account,
)
from cityledger.core.statekeys import PREFIX_BANK, collection_prefix
from cityledger.modules.bank import Transfer, get_balance

from helpers import GENESIS_BALANCE


def test_encoding_is_nonce_then_balance_big_endian():
    raw = encode_account(3, 1_500_000)
    assert raw == (3).to_bytes(8, "big") + (1_500_000).to_bytes(8, "big")
    assert decode_account(raw) == Account(3, 1_500_000)
    assert decode_account(None) == Account(0, 0)
    assert encode_account(0, 0) is None  # an empty account is deleted, not stored


@pytest.mark.parametrize("nonce, balance", [(-1, 5), (5, -1), (2**64, 0), (0, 2**64)])
def test_invalid_fields_are_refused(nonce, balance):
    with pytest.raises(ValueError, match="account: nonce and balance must be 0 to"):
        encode_account(nonce, balance)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 8, b"\x00" * 17])
def test_invalid_record_length_names_the_expected_size(raw):
    with pytest.raises(ValueError, match=f"expected 16 bytes .*got {len(raw)}"):
        decode_account(raw)


def test_a_transfer_changes_one_record_per_account(chain):
    alice, bob = chain.accounts[:2]
    result = chain.block(chain.tx(alice, Transfer(bob.address(), 250)))
    assert result.tx_results[0].ok
    assert decode_account(chain.store.get(account_key(alice.address()))) == Account(1, GENESIS_BALANCE - 250)
    assert decode_account(chain.store.get(account_key(bob.address()))) == Account(0, GENESIS_BALANCE + 250)
    accounts = dict(chain.store.iter_prefix(ACCOUNTS_PREFIX))
    assert {account_key(a.address()) for a in chain.accounts} <= set(accounts)
    assert all(len(value) == 16 for value in accounts.values())
    assert not list(chain.store.iter_prefix(collection_prefix(PREFIX_BANK, 0x01)))  # no separate balance keys


def test_a_payment_to_oneself_keeps_the_balance_and_advances_the_nonce(chain):
    alice = chain.accounts[0]
    result = chain.block(chain.tx(alice, Transfer(alice.address(), 100)))
    assert result.tx_results[0].ok
    assert get_balance(chain.store, alice.address()) == GENESIS_BALANCE
    assert get_nonce(chain.store, alice.address()) == 1


def test_a_new_recipient_gets_a_record_with_nonce_zero(chain):
    alice = chain.accounts[0]
    fresh = b"\x42" * 20
    assert chain.store.get(account_key(fresh)) is None
    chain.block(chain.tx(alice, Transfer(fresh, 7)))
    assert decode_account(chain.store.get(account_key(fresh))) == Account(0, 7)
