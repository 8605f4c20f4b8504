"""consent's vault keys: an owner account's (and a consumer DID's) X25519 key on the ledger, replaced by a
new registration, refused when malformed, of small order, or for a DID the signer does not control."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from test_consent import Consents, consent_state
from test_identity_fixtures import City
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.identity.did import compute_did
from cityledger.modules.consent import ERRORS, RegisterVaultKey, get_vault_key, is_usable_vault_key
from cityledger.modules.consent.vaultkeys import _SMALL_ORDER
from cityledger.offchain.telemetry import VaultKey


UNKNOWN_DID = compute_did(PrivateKey(1, b"\x77" * 32).signer(), bytes(16))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Consents(City(tmp_path_factory.mktemp("vault-keys")))


def refused(world, signer, message, name: str, field: str) -> None:
    before = consent_state(world.ledger)
    outcome = world.ledger.send([signer], [message])
    assert outcome.codespace == "consent" and ERRORS.codes()[outcome.code] == name, outcome
    assert field in outcome.log
    assert consent_state(world.ledger) == before


def test_an_owner_registers_and_rotates_its_vault_key(world):
    first, second = VaultKey.generate(), VaultKey.generate()
    account = address_to_str(world.owner.address())
    outcome = world.ledger.send([world.owner], [RegisterVaultKey(account, first.public)]).raise_for_error()
    assert [e.type for e in outcome.events] == ["vault_key_registered"]
    answer = world.ledger.query("/consent/vault_key", subject=account)
    assert answer == {"subject": account, "key": first.public.hex(), "height": world.ledger.height()}
    world.ledger.send([world.owner], [RegisterVaultKey(account, second.public)]).raise_for_error()
    assert get_vault_key(world.ledger.store, account).key == second.public
    world.ledger.app.check_invariants()


def test_a_consumer_registers_under_its_did_signed_by_its_controller(world):
    key = VaultKey.generate()
    world.ledger.send([world.insurer.keys[0]], [RegisterVaultKey(world.insurer.did, key.public)]).raise_for_error()
    assert get_vault_key(world.ledger.store, world.insurer.did).key == key.public
    refused(world, world.owner, RegisterVaultKey(world.lab.did, key.public), "not_controller", "subject")
    refused(world, world.owner, RegisterVaultKey(UNKNOWN_DID, key.public), "invalid_vault_key", "subject")
    stranger = address_to_str(world.stranger.address())
    for subject in ("", "not a did\n", "did:city:nobody", stranger, stranger.upper()):
        refused(world, world.owner, RegisterVaultKey(subject, key.public), "not_owner", "subject")


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, b"\x01" * 33, *sorted(_SMALL_ORDER),
                                 bytes.fromhex("ec" + "ff" * 31)])
def test_malformed_and_small_order_keys_are_refused(world, key):
    refused(world, world.owner, RegisterVaultKey(address_to_str(world.owner.address()), key), "invalid_vault_key", "key")


def test_the_small_order_list_is_what_x25519_refuses():
    # Each listed point (and its top-bit twin) gives an all-zero shared secret, which cryptography refuses.
    private = X25519PrivateKey.generate()
    for point in _SMALL_ORDER:
        for twin in (point, point[:-1] + bytes([point[-1] | 0x80])):
            assert not is_usable_vault_key(twin)
            with pytest.raises(ValueError):
                private.exchange(X25519PublicKey.from_public_bytes(twin))
    assert is_usable_vault_key(VaultKey.generate().public)


def test_the_query_names_an_unknown_or_malformed_subject(world):
    for subject in ("city" + "00" * 20, "nonsense", ""):
        with pytest.raises(Exception, match="subject"):
            world.ledger.query("/consent/vault_key", subject=subject)
