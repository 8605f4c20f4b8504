"""devices module: register with manufacturer and device signatures, bind through a vehicle-
registration credential, transfer with both parties' consent, decommission, verify device-signed
messages against the registry, and every refusal."""

from __future__ import annotations

import msgspec
import pytest

from test_identity_fixtures import City
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.devices import (
    ERRORS,
    AcceptTransfer,
    BindDevice,
    Decommission,
    OfferTransfer,
    compute_device_did,
)
from cityledger.modules.identity import PURPOSE_AUTHENTICATION, UpdateDid, VerificationKey
from cityledger.offchain.identity import DEVICE_MANUFACTURER
from cityledger.offchain.identity.devices import build_registration, prove_ownership, sign_device_message


def assert_error(outcome, name: str) -> None:
    assert outcome.codespace == "devices", outcome
    assert ERRORS.codes()[outcome.code] == name, outcome


class Fleet:
    """A city with a manufacturer, a transport office, and helpers for one vehicle's life."""

    def __init__(self, city: City) -> None:
        self.city = city
        self.ledger = city.ledger
        self.maker = city.office("maker", 0x61)
        assert city.accredit(self.maker.did, DEVICE_MANUFACTURER) == "executed"
        self.maker_key = self.maker.keys[0]
        city.transport_office()

    def register(self, device: PrivateKey, kind: str = "vehicle"):
        message = build_registration(self.city.chain_id, kind, "CityCar-e1", device, self.maker.did, self.maker_key)
        return self.ledger.send([self.maker_key], [message])

    def owner(self, wallet, device_did: str, purpose: str = "vehicle") -> PrivateKey:
        """A wallet account holding a registration credential for the device."""
        account = wallet.account(purpose)
        self.city.registration(wallet, device_did, account, f"REG-{device_did}-{address_to_str(account.address())}")
        return account

    def bind(self, wallet, device_did: str, account: PrivateKey):
        proof = prove_ownership(wallet, self.ledger, self.city.chain_id, device_did, account)
        return self.ledger.send([account], [BindDevice(device_did, proof)])

    def device(self, did: str) -> dict:
        return self.ledger.query("/devices/device", did=did)

    def verify(self, did: str, payload: bytes, signature: bytes) -> dict:
        return self.ledger.query("/devices/verify", did=did, payload=payload.hex(), signature=signature.hex())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return Fleet(City(tmp_path_factory.mktemp("fleet")))


def new_device(seed: int, scheme: int = 2) -> PrivateKey:
    return PrivateKey(scheme, bytes([seed]) * 32)


def test_register_creates_a_device_did_without_owner(fleet):
    device = new_device(0x70)
    fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    record = fleet.device(did)
    assert record["owner"] is None and record["status"] == "active" and record["manufacturer"] == fleet.maker.did
    document = fleet.ledger.query("/identity/did", did=did)
    assert document["didDocumentMetadata"]["cityledger:kind"] == "device"
    assert_error(fleet.register(device), "already_registered")


def test_register_ed25519_device(fleet):
    fleet.register(new_device(0x71, scheme=1)).raise_for_error()


def test_invalid_registration_signatures_and_manufacturers_are_refused(fleet):
    device = new_device(0x72)
    good = build_registration(fleet.city.chain_id, "vehicle", "CityCar-e1", device, fleet.maker.did, fleet.maker_key)
    forged = msgspec.structs.replace(good, manufacturer_signature=PrivateKey(1, b"\x99" * 32).sign(b"x"))
    assert_error(fleet.ledger.send([fleet.maker_key], [forged]), "bad_signature")
    no_possession = msgspec.structs.replace(good, device_signature=new_device(0x73).sign(b"x"))
    assert_error(fleet.ledger.send([fleet.maker_key], [no_possession]), "bad_signature")
    rogue = fleet.city.office("rogue-maker", 0x62)  # not accredited as a manufacturer
    message = build_registration(fleet.city.chain_id, "vehicle", "X", device, rogue.did, rogue.keys[0])
    assert_error(fleet.ledger.send(rogue.keys, [message]), "manufacturer_not_trusted")
    wrong_kind = msgspec.structs.replace(good, kind="toaster")
    assert_error(fleet.ledger.send([fleet.maker_key], [wrong_kind]), "invalid_device")


def test_bind_with_registration_credential_keeps_owner_pseudonymous(fleet):
    device = new_device(0x74)
    fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    wallet = fleet.city.wallet()
    account = fleet.owner(wallet, did)
    outcome = fleet.bind(wallet, did, account).raise_for_error()
    assert fleet.device(did)["owner"] == address_to_str(account.address())
    assert ("device_bound", ) == tuple(e.type for e in outcome.events)
    second = fleet.city.wallet()
    assert_error(fleet.bind(second, did, fleet.owner(second, did)), "already_bound")


def test_invalid_bind_without_a_matching_credential_is_refused(fleet):
    device, other = new_device(0x75), new_device(0x76)
    for d in (device, other):
        fleet.register(d).raise_for_error()
    did, other_did = compute_device_did(device.public_key), compute_device_did(other.public_key)
    wallet = fleet.city.wallet()
    account = fleet.owner(wallet, other_did)  # registered for the other device
    proof_for_other = prove_ownership(wallet, fleet.ledger, fleet.city.chain_id, other_did, account)
    assert_error(fleet.ledger.send([account], [BindDevice(did, proof_for_other)]), "binding_proof_rejected")
    # Somebody else replaying the owner's proof from another account is refused too.
    thief = fleet.city.wallet().account("vehicle")
    assert_error(fleet.ledger.send([thief], [BindDevice(other_did, proof_for_other)]), "binding_proof_rejected")
    assert_error(fleet.ledger.send([account], [BindDevice(did, b"{}")]), "binding_proof_rejected")


def test_invalid_bind_after_registration_revoked(fleet):
    device = new_device(0x77)
    fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    wallet = fleet.city.wallet()
    account = fleet.owner(wallet, did)
    fleet.city.transport_office().revoke([f"REG-{did}-{address_to_str(account.address())}"])
    outcome = fleet.bind(wallet, did, account)
    assert_error(outcome, "binding_proof_rejected")


def bound_device(fleet, seed: int):
    device = new_device(seed)
    fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    wallet = fleet.city.wallet()
    account = fleet.owner(wallet, did)
    fleet.bind(wallet, did, account).raise_for_error()
    return device, did, account


def test_transfer_needs_both_parties(fleet):
    _, did, seller = bound_device(fleet, 0x78)
    buyer_wallet = fleet.city.wallet()
    buyer = fleet.owner(buyer_wallet, did)
    proof = prove_ownership(buyer_wallet, fleet.ledger, fleet.city.chain_id, did, buyer)
    # Without an offer by the owner, the buyer cannot take the device.
    assert_error(fleet.ledger.send([buyer], [AcceptTransfer(did, proof)]), "no_pending_transfer")
    # Only the owner may offer.
    assert_error(fleet.ledger.send([buyer], [OfferTransfer(did, buyer.address())]), "not_owner")
    fleet.ledger.send([seller], [OfferTransfer(did, buyer.address())]).raise_for_error()
    # The offer alone moves nothing: the new owner has not consented yet.
    assert fleet.device(did)["owner"] == address_to_str(seller.address())
    assert fleet.device(did)["pending_owner"] == address_to_str(buyer.address())
    # A third party cannot accept in the buyer's place.
    third_wallet = fleet.city.wallet()
    third = fleet.owner(third_wallet, did)
    third_proof = prove_ownership(third_wallet, fleet.ledger, fleet.city.chain_id, did, third)
    assert_error(fleet.ledger.send([third], [AcceptTransfer(did, third_proof)]), "not_owner")
    # The buyer accepts with its own registration: ownership moves.
    fleet.ledger.send([buyer], [AcceptTransfer(did, proof)]).raise_for_error()
    record = fleet.device(did)
    assert record["owner"] == address_to_str(buyer.address()) and record["pending_owner"] is None
    assert record["epoch"] == 2
    # The old owner has no rights left.
    assert_error(fleet.ledger.send([seller], [OfferTransfer(did, seller.address())]), "not_owner")


def test_invalid_accept_without_the_buyers_registration(fleet):
    _, did, seller = bound_device(fleet, 0x79)
    buyer = fleet.city.wallet().account("vehicle")
    fleet.ledger.send([seller], [OfferTransfer(did, buyer.address())]).raise_for_error()
    assert_error(fleet.ledger.send([buyer], [AcceptTransfer(did, b"{}")]), "binding_proof_rejected")
    fleet.ledger.send([seller], [OfferTransfer(did, b"")]).raise_for_error()  # withdraw the offer
    assert fleet.device(did)["pending_owner"] is None


def test_device_signed_messages_verify_against_the_registry(fleet):
    device, did, owner = bound_device(fleet, 0x7A)
    payload = b'{"odometer_km": 1234}'
    signature = sign_device_message(device, did, payload)
    assert fleet.verify(did, payload, signature) == {"valid": True, "reason": ""}
    # A forged signature (another key) and a changed payload fail.
    assert not fleet.verify(did, payload, sign_device_message(new_device(0x7B), did, payload))["valid"]
    assert not fleet.verify(did, b'{"odometer_km": 1}', signature)["valid"]
    # The device rotates its key: the old key's signatures stop verifying.
    rotated = new_device(0x7C)
    keys = [VerificationKey("key-1", rotated.public_key, [PURPOSE_AUTHENTICATION])]
    fleet.ledger.send([device], [UpdateDid(did, 1, rotated.signer(), keys, [])]).raise_for_error()
    assert not fleet.verify(did, payload, signature)["valid"]
    assert fleet.verify(did, payload, sign_device_message(rotated, did, payload))["valid"]


def test_decommission_by_owner_only_and_signatures_stop(fleet):
    device, did, owner = bound_device(fleet, 0x7D)
    stranger = fleet.city.wallet().account("vehicle")
    assert_error(fleet.ledger.send([stranger], [Decommission(did)]), "not_owner")
    fleet.ledger.send([owner], [Decommission(did)]).raise_for_error()
    assert fleet.device(did)["status"] == "decommissioned"
    assert fleet.ledger.query("/identity/did", did=did)["didDocumentMetadata"]["deactivated"] is True
    payload = b"late message"
    assert "decommissioned" in fleet.verify(did, payload, sign_device_message(device, did, payload))["reason"]
    assert_error(fleet.ledger.send([owner], [OfferTransfer(did, stranger.address())]), "decommissioned")
    fleet.ledger.app.check_invariants()


def test_unbound_device_decommissioned_by_its_manufacturer(fleet):
    device = new_device(0x7E)
    fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    fleet.ledger.send([fleet.maker_key], [Decommission(did)]).raise_for_error()
    assert fleet.device(did)["status"] == "decommissioned"


def test_a_wallet_with_several_registrations_proves_the_right_one(fleet):
    wallet = fleet.city.wallet()
    account = wallet.account("vehicle")
    dids = []
    for seed in (0x80, 0x81, 0x82):
        device = new_device(seed)
        fleet.register(device).raise_for_error()
        did = compute_device_did(device.public_key)
        fleet.city.registration(wallet, did, account, f"REG-multi-{seed}")
        dids.append(did)
    for did in reversed(dids):
        fleet.bind(wallet, did, account).raise_for_error()
        assert fleet.device(did)["owner"] == address_to_str(account.address())
