"""consent module: data sets of owned devices, purpose-bound consents and their validity at a
height, revocation, access-log anchors from accredited vault services (an unbroken chain), records
roots once per interval (a data set's, and a gateway's fleet-wide one), every refusal (with no state change), the invariants, and what the module
keeps on chain (ids, hashes, DIDs, purpose codes, counts and heights only)."""

from __future__ import annotations

import re

import msgspec
import pytest

from test_devices import Fleet, new_device
from test_identity_fixtures import City
from cityledger.core.encoding import encode
from cityledger.core.errors import InvariantBroken
from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.state import DictState
from cityledger.core.statekeys import PREFIX_CONSENT
from cityledger.core.types import address_to_str
from cityledger.modules.consent import (
    ERRORS,
    GATEWAY_TYPE,
    PURPOSES,
    VAULT_SERVICE_TYPE,
    ZERO_HEAD,
    AccessLogAnchor,
    AnchorAccessLog,
    AnchorGatewayRoot,
    AnchorRecordsRoot,
    ConsentRecord,
    DataSetRecord,
    GatewayRoot,
    GrantConsent,
    RecordsRoot,
    RegisterDataSet,
    RevokeConsent,
    compute_data_set_id,
    get_consent,
    is_consent_valid,
)
from cityledger.modules.consent.invariants import check_anchors, check_consents, check_data_sets, \
    check_gateway_roots
from cityledger.modules.consent.keys import by_data_set_key, consent_key, data_set_key, gateway_last_key, \
    gateway_root_key, log_anchor_key
from cityledger.modules.devices import Decommission, compute_device_did
from cityledger.modules.identity import DeactivateDid
from cityledger.modules.identity.keeper import KEEPER
from cityledger.modules import devices as devices_module
from cityledger.offchain.telemetry.anchor import compute_inclusion_proof, compute_records_root, is_included

SCHEMA = "vehicle-telemetry-1"
CONSENT_PREFIX = bytes([PREFIX_CONSENT])


def consent_state(ledger) -> list[tuple[bytes, bytes]]:
    return list(ledger.store.iter_prefix(CONSENT_PREFIX))


class Consents:
    """A city with a bound vehicle, a gateway, a vault service and two consumers."""

    def __init__(self, city: City) -> None:
        self.city, self.ledger = city, city.ledger
        self.fleet = Fleet(city)
        self.gateway = city.office("gateway", 0x81)
        assert city.accredit(self.gateway.did, GATEWAY_TYPE) == "executed"
        self.vault = city.office("vault", 0x82)
        assert city.accredit(self.vault.did, VAULT_SERVICE_TYPE) == "executed"
        self.rogue_vault = city.office("rogue-vault", 0x83)  # not accredited
        self.insurer = city.office("insurer", 0x84)
        self.lab = city.office("lab", 0x85)
        self.owner, self.device_did = self.bound(0x90)
        self.stranger, self.stranger_device = self.bound(0x91)

    def bound(self, seed: int):
        device = new_device(seed)
        self.fleet.register(device).raise_for_error()
        did = compute_device_did(device.public_key)
        wallet = self.city.wallet()
        account = self.fleet.owner(wallet, did)
        self.fleet.bind(wallet, did, account).raise_for_error()
        return account, did

    def register(self, commitment: bytes, owner=None, device: str | None = None, owner_did: str = ""):
        message = RegisterDataSet(SCHEMA, commitment, device or self.device_did, self.gateway.did, owner_did)
        return self.ledger.send([owner or self.owner], [message])

    def data_set(self, label: bytes) -> str:
        """A fresh data set of the owner's vehicle."""
        commitment = sha256(label)
        self.register(commitment).raise_for_error()
        return compute_data_set_id(self.owner.address(), self.device_did, SCHEMA, commitment)

    def grant(self, data_set: str, consumer: str | None = None, purpose: str = "insurance-pricing",
              period: tuple[int, int] = (1, 50), expiry: int | None = None, key=None):
        expiry = self.ledger.height() + 100 if expiry is None else expiry
        message = GrantConsent(data_set, consumer or self.insurer.did, purpose, period[0], period[1], expiry)
        return self.ledger.send([key or self.owner], [message])

    def granted(self, data_set: str, **kwargs) -> int:
        outcome = self.grant(data_set, **kwargs).raise_for_error()
        return int(dict(outcome.events[0].attributes)["consent_id"])

    def valid(self, data_set: str, consumer: str, purpose: str, height: int) -> dict:
        return self.ledger.query("/consent/valid", data_set=data_set, consumer=consumer, purpose=purpose,
                                 height=str(height))

    def anchor(self, subject: str, head: bytes, count: int, previous: bytes, service=None, key=None):
        service = service or self.vault
        message = AnchorAccessLog(service.did, subject, head, count, previous)
        return self.ledger.send([key or service.keys[0]], [message])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Consents(City(tmp_path_factory.mktemp("consent")))


def refused(world: Consents, outcome_of, name: str) -> None:
    """Send through `outcome_of()`; assert the consent error `name` and no change to consent state."""
    before = consent_state(world.ledger)
    outcome = outcome_of()
    assert outcome.codespace == "consent", outcome
    assert ERRORS.codes()[outcome.code] == name, outcome
    assert consent_state(world.ledger) == before
    world.ledger.app.check_invariants()


# -- data sets -------------------------------------------------------------------------------------

def test_register_data_set_of_an_owned_device(world):
    commitment = sha256(b"data set one")
    outcome = world.register(commitment).raise_for_error()
    data_set = compute_data_set_id(world.owner.address(), world.device_did, SCHEMA, commitment)
    assert [e.type for e in outcome.events] == ["data_set_registered"]
    record = world.ledger.query("/consent/data_set", id=data_set)
    assert record == {"id": data_set, "owner": address_to_str(world.owner.address()), "owner_did": None,
                      "schema_id": SCHEMA, "commitment": commitment.hex(), "device": world.device_did,
                      "gateway": world.gateway.did, "consents": 0, "last_interval": 0,
                      "registered_height": outcome.height}
    refused(world, lambda: world.register(commitment), "already_registered")


def test_register_data_set_bound_to_a_did_the_signer_controls(world):
    org = world.city.office("owner-org", 0x86)
    key = org.keys[0]
    device = new_device(0x92)
    world.fleet.register(device).raise_for_error()
    did = compute_device_did(device.public_key)
    wallet = world.city.wallet()
    world.city.registration(wallet, did, key, f"REG-org-{did}")
    world.fleet.bind(wallet, did, key).raise_for_error()
    world.register(sha256(b"org set"), owner=key, device=did, owner_did=org.did).raise_for_error()
    data_set = compute_data_set_id(key.address(), did, SCHEMA, sha256(b"org set"))
    assert world.ledger.query("/consent/data_set", id=data_set)["owner_did"] == org.did
    # The vehicle's owner does not control the organisation's DID.
    refused(world, lambda: world.register(sha256(b"x"), owner_did=org.did), "not_controller")


def test_invalid_register_data_set_is_refused(world):
    refused(world, lambda: world.register(sha256(b"s"), owner=world.stranger), "not_owner")
    refused(world, lambda: world.register(sha256(b"s"), device=world.gateway.did), "unknown_device")
    refused(world, lambda: world.register(sha256(b"s"), device=world.device_did + "\n"), "unknown_device")
    refused(world, lambda: world.register(b"\x01" * 31), "invalid_data_set")
    for schema in ("", "Vehicle", " v1", "v1\n", "x" * 65):
        message = RegisterDataSet(schema, sha256(b"s"), world.device_did, world.gateway.did, "")
        refused(world, lambda: world.ledger.send([world.owner], [message]), "invalid_data_set")
    unaccredited = RegisterDataSet(SCHEMA, sha256(b"s"), world.device_did, world.rogue_vault.did, "")
    refused(world, lambda: world.ledger.send([world.owner], [unaccredited]), "not_accredited")
    no_did = RegisterDataSet(SCHEMA, sha256(b"s"), world.device_did, world.gateway.did, "did:city:nothing")
    refused(world, lambda: world.ledger.send([world.owner], [no_did]), "invalid_data_set")


def test_invalid_register_data_set_of_a_decommissioned_device(world):
    owner, did = world.bound(0x93)
    world.ledger.send([owner], [Decommission(did)]).raise_for_error()
    refused(world, lambda: world.register(sha256(b"gone"), owner=owner, device=did), "unknown_device")


# -- consents --------------------------------------------------------------------------------------

def test_grant_consent_and_its_validity_at_heights(world):
    data_set = world.data_set(b"grant")
    outcome = world.grant(data_set, period=(1, 40), expiry=world.ledger.height() + 50).raise_for_error()
    granted_at = outcome.height
    consent_id = int(dict(outcome.events[0].attributes)["consent_id"])
    consent = world.ledger.query("/consent/consent", id=str(consent_id))
    assert consent == {"id": consent_id, "data_set": data_set, "consumer": world.insurer.did,
                       "purpose": "insurance-pricing", "from_height": 1, "to_height": 40,
                       "expiry_height": granted_at + 49, "granted_height": granted_at, "revoked_height": None}
    answer = world.valid(data_set, world.insurer.did, "insurance-pricing", granted_at)
    assert answer == {"valid": True, "consent": consent}
    assert is_consent_valid(KEEPER, world.ledger.store, data_set, world.insurer.did, "insurance-pricing",
                            granted_at + 48)
    # Before it was granted, from its expiry on, for another purpose or another consumer: not valid.
    for consumer, purpose, height in ((world.insurer.did, "insurance-pricing", granted_at - 1),
                                      (world.insurer.did, "insurance-pricing", granted_at + 49),
                                      (world.insurer.did, "ad-training", granted_at),
                                      (world.lab.did, "insurance-pricing", granted_at)):
        assert world.valid(data_set, consumer, purpose, height) == {"valid": False, "consent": None}
    listed = world.ledger.query("/consent/consents", data_set=data_set)
    assert [c["id"] for c in listed["items"]] == [consent_id] and listed["next"] is None
    assert world.ledger.query("/consent/consents", data_set=data_set, height=str(granted_at + 49))["items"] == []
    mine = world.ledger.query("/consent/consumer", consumer=world.insurer.did)["items"]
    assert consent_id in [c["id"] for c in mine]
    assert world.ledger.query("/consent/data_set", id=data_set)["consents"] == 1


def test_revocation_is_immediate_and_only_for_later_heights(world):
    data_set = world.data_set(b"revoke")
    consent_id = world.granted(data_set, purpose="research", consumer=world.lab.did)
    granted_at = world.ledger.height()
    outcome = world.ledger.send([world.owner], [RevokeConsent(consent_id)]).raise_for_error()
    assert [e.type for e in outcome.events] == ["consent_revoked"]
    revoked_at = outcome.height
    assert world.valid(data_set, world.lab.did, "research", granted_at)["valid"]
    assert world.valid(data_set, world.lab.did, "research", revoked_at - 1)["valid"]
    assert not world.valid(data_set, world.lab.did, "research", revoked_at)["valid"]
    assert not world.valid(data_set, world.lab.did, "research", revoked_at + 10)["valid"]
    assert world.ledger.query("/consent/consent", id=str(consent_id))["revoked_height"] == revoked_at
    refused(world, lambda: world.ledger.send([world.owner], [RevokeConsent(consent_id)]), "already_revoked")
    # A fresh grant of the same purpose is a new consent, valid again from its own height.
    second = world.granted(data_set, purpose="research", consumer=world.lab.did)
    assert world.valid(data_set, world.lab.did, "research", world.ledger.height())["consent"]["id"] == second


def test_a_deactivated_consumer_reads_nothing(world):
    data_set = world.data_set(b"deactivated consumer")
    shop = world.city.office("shop", 0x87)
    world.granted(data_set, consumer=shop.did, purpose="maintenance")
    assert world.valid(data_set, shop.did, "maintenance", world.ledger.height())["valid"]
    world.ledger.send(shop.keys, [DeactivateDid(shop.did)]).raise_for_error()
    assert not world.valid(data_set, shop.did, "maintenance", world.ledger.height())["valid"]


def test_invalid_grant_is_refused(world):
    data_set = world.data_set(b"invalid grants")
    height = world.ledger.height()
    refused(world, lambda: world.grant(data_set, key=world.stranger), "not_owner")
    refused(world, lambda: world.grant("ds-" + "0" * 32), "unknown_data_set")
    refused(world, lambda: world.grant(data_set + "\n"), "invalid_data_set")
    refused(world, lambda: world.grant(data_set, consumer="did:city:nobody"), "unknown_consumer")
    refused(world, lambda: world.grant(data_set, consumer=world.device_did), "unknown_consumer")
    refused(world, lambda: world.grant(data_set, purpose="marketing"), "unknown_purpose")
    refused(world, lambda: world.grant(data_set, purpose="research "), "unknown_purpose")
    refused(world, lambda: world.grant(data_set, period=(0, 5)), "invalid_consent")
    refused(world, lambda: world.grant(data_set, period=(9, 5)), "invalid_consent")
    refused(world, lambda: world.grant(data_set, expiry=height), "invalid_consent")  # already expired
    refused(world, lambda: world.grant(data_set, expiry=height + 10**7), "invalid_consent")
    refused(world, lambda: world.grant(data_set, period=(1, height + 200), expiry=height + 100), "invalid_consent")


def test_invalid_revoke_is_refused(world):
    data_set = world.data_set(b"invalid revokes")
    consent_id = world.granted(data_set)
    refused(world, lambda: world.ledger.send([world.stranger], [RevokeConsent(consent_id)]), "not_owner")
    for bad in (0, -1, 10**9, 2**63):
        refused(world, lambda: world.ledger.send([world.owner], [RevokeConsent(bad)]), "unknown_consent")


def test_consent_lists_are_paged(world, monkeypatch):
    from cityledger.modules.consent import queries
    data_set = world.data_set(b"paged")
    ids = [world.granted(data_set, purpose=purpose) for purpose in PURPOSES[:3]]
    monkeypatch.setattr(queries, "MAX_LIST_RESULTS", 2)
    first = world.ledger.query("/consent/consents", data_set=data_set)
    assert [c["id"] for c in first["items"]] == ids[:2] and first["next"] == ids[1]
    second = world.ledger.query("/consent/consents", data_set=data_set, after=str(first["next"]))
    assert [c["id"] for c in second["items"]] == ids[2:] and second["next"] is None


# -- access-log anchors ----------------------------------------------------------------------------

def test_access_log_anchors_form_a_chain(world):
    data_set = world.data_set(b"logged")
    heads = [sha256(bytes([n])) for n in range(3)]
    world.anchor(data_set, heads[0], 2, ZERO_HEAD).raise_for_error()
    world.anchor(data_set, heads[1], 5, heads[0]).raise_for_error()
    # A log that left an entry out has another head: its next anchor cannot link to the last one.
    refused(world, lambda: world.anchor(data_set, heads[2], 6, sha256(b"forged")), "broken_chain")
    refused(world, lambda: world.anchor(data_set, heads[2], 6, heads[1][:31]), "invalid_anchor")
    refused(world, lambda: world.anchor(data_set, heads[2], 6, ZERO_HEAD), "broken_chain")  # restarting it
    refused(world, lambda: world.anchor(data_set, heads[2], 5, heads[1]), "invalid_anchor")  # no new entry
    refused(world, lambda: world.anchor(data_set, heads[1], 6, heads[1]), "invalid_anchor")
    world.anchor(data_set, heads[2], 9, heads[1]).raise_for_error()
    log = world.ledger.query("/consent/access_log", service=world.vault.did, subject=data_set)
    assert [(a["seq"], a["previous"], a["head"], a["count"]) for a in log["items"]] == [
        (1, ZERO_HEAD.hex(), heads[0].hex(), 2), (2, heads[0].hex(), heads[1].hex(), 5),
        (3, heads[1].hex(), heads[2].hex(), 9)]
    assert log["head"]["seq"] == 3


def test_access_log_of_an_owner_account(world):
    subject = address_to_str(world.owner.address())
    world.anchor(subject, sha256(b"owner log"), 1, ZERO_HEAD).raise_for_error()
    assert world.ledger.query("/consent/access_log", service=world.vault.did, subject=subject)["head"]["count"] == 1


def test_invalid_access_log_anchors_are_refused(world):
    data_set = world.data_set(b"bad anchors")
    head = sha256(b"h")
    refused(world, lambda: world.anchor(data_set, head, 1, ZERO_HEAD, service=world.rogue_vault), "not_accredited")
    refused(world, lambda: world.anchor(data_set, head, 1, ZERO_HEAD, key=world.owner), "not_controller")
    refused(world, lambda: world.anchor("ds-" + "1" * 32, head, 1, ZERO_HEAD), "unknown_data_set")
    for subject in ("", "city" + "AB" * 20, "alice", address_to_str(world.owner.address()) + "\n"):
        refused(world, lambda: world.anchor(subject, head, 1, ZERO_HEAD), "invalid_anchor")
    refused(world, lambda: world.anchor(data_set, ZERO_HEAD, 1, ZERO_HEAD), "invalid_anchor")
    refused(world, lambda: world.anchor(data_set, head, 0, ZERO_HEAD), "invalid_anchor")
    refused(world, lambda: world.anchor(data_set, head, 2**63, ZERO_HEAD), "invalid_anchor")
    refused(world, lambda: world.anchor(data_set, head + b"\x00", 1, ZERO_HEAD), "invalid_anchor")


# -- records roots ---------------------------------------------------------------------------------

def test_records_roots_once_per_interval_by_owner_or_gateway(world):
    data_set = world.data_set(b"roots")
    root = sha256(b"root-1")
    world.ledger.send([world.owner], [AnchorRecordsRoot(data_set, 1, root, 10)]).raise_for_error()
    world.ledger.send(world.gateway.keys, [AnchorRecordsRoot(data_set, 3, sha256(b"root-3"), 7)]).raise_for_error()
    roots = world.ledger.query("/consent/records_roots", data_set=data_set)["items"]
    assert [(r["interval"], r["anchored_by"], r["count"]) for r in roots] == [(1, "owner", 10),
                                                                               (3, world.gateway.did, 7)]
    assert roots[0]["root"] == root.hex()
    for interval in (1, 3, 2):  # anchored already, or older than the last anchored interval
        message = AnchorRecordsRoot(data_set, interval, sha256(b"again"), 1)
        refused(world, lambda: world.ledger.send([world.owner], [message]), "invalid_anchor")


def test_invalid_records_roots_are_refused(world):
    data_set = world.data_set(b"bad roots")
    good = AnchorRecordsRoot(data_set, 1, sha256(b"r"), 1)
    refused(world, lambda: world.ledger.send([world.stranger], [good]), "not_owner")
    refused(world, lambda: world.ledger.send(world.vault.keys, [good]), "not_owner")  # not its gateway
    for bad in (msgspec.structs.replace(good, interval=0), msgspec.structs.replace(good, interval=2**41),
                msgspec.structs.replace(good, root=b"r" * 31), msgspec.structs.replace(good, count=0),
                msgspec.structs.replace(good, count=2**33)):
        refused(world, lambda: world.ledger.send([world.owner], [bad]), "invalid_anchor")
    unknown = msgspec.structs.replace(good, data_set="ds-" + "2" * 32)
    refused(world, lambda: world.ledger.send([world.owner], [unknown]), "unknown_data_set")


def test_invalid_records_root_from_a_gateway_that_lost_its_accreditation(world):
    gateway = world.city.office("gateway-2", 0x88)
    assert world.city.accredit(gateway.did, GATEWAY_TYPE) == "executed"
    message = RegisterDataSet(SCHEMA, sha256(b"gw2"), world.device_did, gateway.did, "")
    world.ledger.send([world.owner], [message]).raise_for_error()
    data_set = compute_data_set_id(world.owner.address(), world.device_did, SCHEMA, sha256(b"gw2"))
    assert world.city.withdraw(gateway.did, GATEWAY_TYPE) == "executed"
    anchor = AnchorRecordsRoot(data_set, 1, sha256(b"r"), 1)
    refused(world, lambda: world.ledger.send(gateway.keys, [anchor]), "not_accredited")


# -- gateway roots: one tx per interval over every device's records --------------------------------

def gateway_roots(world: Consents, gateway=None) -> list[dict]:
    return world.ledger.query("/consent/gateway_roots", gateway=(gateway or world.gateway).did)["items"]


def test_gateway_root_covers_the_fleet_and_proves_a_record(world):
    """Records of several devices, one root, one tx; a record's proof checks against the root read back."""
    record_ids = [sha256(b"device-%d record-%d" % (d, r)) for d in range(5) for r in range(3)]
    root = compute_records_root(record_ids)
    outcome = world.ledger.send(world.gateway.keys, [AnchorGatewayRoot(world.gateway.did, 7, root, 15)])
    outcome.raise_for_error()
    assert [e.type for e in outcome.events] == ["gateway_root_anchored"]
    [anchored] = gateway_roots(world)
    assert anchored == {"gateway": world.gateway.did, "interval": 7, "root": root.hex(), "count": 15,
                        "height": outcome.height}
    proof = compute_inclusion_proof(record_ids, 11)
    assert proof.size == anchored["count"]
    assert is_included(bytes.fromhex(anchored["root"]), record_ids[11], proof)
    assert not is_included(bytes.fromhex(anchored["root"]), sha256(b"never received"), proof)
    world.ledger.send(world.gateway.keys, [AnchorGatewayRoot(world.gateway.did, 9, sha256(b"r9"), 1)]) \
        .raise_for_error()
    assert [r["interval"] for r in gateway_roots(world)] == [7, 9]
    later = world.ledger.query("/consent/gateway_roots", gateway=world.gateway.did, after="7")
    assert [r["interval"] for r in later["items"]] == [9] and later["next"] is None
    # One interval's root directly (one key read), as an owner's proof is checked.
    assert world.ledger.query("/consent/gateway_root", gateway=world.gateway.did, interval="7") == anchored
    with pytest.raises(LookupError, match="interval"):
        world.ledger.query("/consent/gateway_root", gateway=world.gateway.did, interval="8")
    for args, field in (({"interval": "7"}, "gateway"), ({"gateway": "not a did", "interval": "7"}, "gateway"),
                        ({"gateway": world.gateway.did}, "interval"),
                        ({"gateway": world.gateway.did, "interval": "-7"}, "interval"),
                        ({"gateway": world.gateway.did, "interval": "7\n"}, "interval"),
                        ({"gateway": world.gateway.did, "interval": "9" * 40}, "interval"),
                        ({"gateway": world.gateway.did, "interval": "\udcff"}, "interval")):
        with pytest.raises(ValueError, match=field):
            world.ledger.query("/consent/gateway_root", **args)
    world.ledger.app.check_invariants()


def test_invalid_gateway_root_interval_twice_or_going_back(world):
    last = max([r["interval"] for r in gateway_roots(world)], default=0)
    world.ledger.send(world.gateway.keys, [AnchorGatewayRoot(world.gateway.did, last + 10, sha256(b"g"), 2)]) \
        .raise_for_error()
    for interval in (last + 10, last + 9, 0):
        message = AnchorGatewayRoot(world.gateway.did, interval, sha256(b"again"), 1)
        refused(world, lambda: world.ledger.send(world.gateway.keys, [message]), "invalid_anchor")
    too_far = AnchorGatewayRoot(world.gateway.did, 2**41, sha256(b"far"), 1)
    refused(world, lambda: world.ledger.send(world.gateway.keys, [too_far]), "invalid_anchor")


def test_invalid_gateway_root_count_or_root_length(world):
    good = AnchorGatewayRoot(world.gateway.did, 2**39, sha256(b"r"), 1)
    for bad in (msgspec.structs.replace(good, count=0), msgspec.structs.replace(good, count=2**32 + 1),
                msgspec.structs.replace(good, count=-1), msgspec.structs.replace(good, root=b"r" * 31),
                msgspec.structs.replace(good, root=b"r" * 33), msgspec.structs.replace(good, root=b"")):
        refused(world, lambda: world.ledger.send(world.gateway.keys, [bad]), "invalid_anchor")


def test_invalid_gateway_root_from_an_unaccredited_gateway_or_a_stranger(world):
    root = sha256(b"fleet")
    refused(world, lambda: world.ledger.send(world.vault.keys, [AnchorGatewayRoot(world.vault.did, 1, root, 1)]),
            "not_accredited")  # accredited, but as a vault service
    refused(world, lambda: world.ledger.send(world.insurer.keys, [AnchorGatewayRoot(world.insurer.did, 1, root,
                                                                                     1)]), "not_accredited")
    refused(world, lambda: world.ledger.send([world.stranger], [AnchorGatewayRoot(world.gateway.did, 2**39, root,
                                                                                  1)]), "not_controller")
    refused(world, lambda: world.ledger.send(world.vault.keys, [AnchorGatewayRoot(world.gateway.did, 2**39, root,
                                                                                  1)]), "not_controller")
    refused(world, lambda: world.ledger.send([world.owner], [AnchorGatewayRoot("did:city:nobody", 1, root, 1)]),
            "not_accredited")


def test_invalid_gateway_root_after_the_accreditation_is_withdrawn(world):
    gateway = world.city.office("gateway-3", 0x89)
    assert world.city.accredit(gateway.did, GATEWAY_TYPE) == "executed"
    world.ledger.send(gateway.keys, [AnchorGatewayRoot(gateway.did, 1, sha256(b"g3"), 4)]).raise_for_error()
    assert world.city.withdraw(gateway.did, GATEWAY_TYPE) == "executed"
    message = AnchorGatewayRoot(gateway.did, 2, sha256(b"g3-2"), 4)
    refused(world, lambda: world.ledger.send(gateway.keys, [message]), "not_accredited")
    assert [r["interval"] for r in gateway_roots(world, gateway)] == [1]


def test_invariant_catches_gateway_roots_that_do_not_increase(world):
    world.ledger.send(world.gateway.keys, [AnchorGatewayRoot(world.gateway.did, 2**39 + 1, sha256(b"i"), 1)]) \
        .raise_for_error()
    world.ledger.app.check_invariants()
    older = GatewayRoot(world.gateway.did, 2**39 + 1, sha256(b"i"), 1, 1)
    with pytest.raises(InvariantBroken, match="last interval"):
        check_gateway_roots(_tampered(world, gateway_last_key(world.gateway.did), (5).to_bytes(8, "big")))
    with pytest.raises(InvariantBroken, match="does not increase"):  # stored under a later key than it says
        check_gateway_roots(_tampered(world, gateway_root_key(world.gateway.did, 2**39 + 2), encode(older)))
    with pytest.raises(InvariantBroken, match="without its roots"):
        check_gateway_roots(_tampered(world, gateway_last_key("did:city:Ghost"), (1).to_bytes(8, "big")))


# -- invariants and privacy ------------------------------------------------------------------------

def _tampered(world: Consents, key: bytes, value: bytes | None) -> DictState:
    items = dict(world.ledger.store.iter_prefix(b""))
    if value is None:
        items.pop(key)
    else:
        items[key] = value
    return DictState(items)


def test_invariants_catch_dangling_consents_and_broken_chains(world):
    data_set = world.data_set(b"invariants")
    consent_id = world.granted(data_set)
    world.anchor(data_set, sha256(b"i1"), 1, ZERO_HEAD).raise_for_error()
    world.anchor(data_set, sha256(b"i2"), 2, sha256(b"i1")).raise_for_error()
    world.ledger.app.check_invariants()
    store = world.ledger.store
    with pytest.raises(InvariantBroken, match="unknown data set"):
        check_consents(_tampered(world, data_set_key(data_set), None))
    dangling = msgspec.structs.replace(get_consent(store, consent_id), data_set="ds-" + "3" * 32)
    with pytest.raises(InvariantBroken):
        check_consents(_tampered(world, consent_key(consent_id), encode(dangling)))
    with pytest.raises(InvariantBroken, match="broken"):
        check_anchors(_tampered(world, log_anchor_key(world.vault.did, data_set, 1), None))
    with pytest.raises(InvariantBroken, match="counts"):
        check_data_sets(devices_module, _tampered(world, by_data_set_key(data_set, consent_id), None))


ALLOWED_STRINGS = {"id", "owner_did", "schema_id", "device", "gateway", "data_set", "consumer", "purpose",
                   "service", "subject", "anchored_by"}
IDENTIFIER = re.compile(r"|did:city:[1-9A-HJ-NP-Za-km-z]+|ds-[0-9a-f]{32}|city[0-9a-f]{40}")
ALLOWED_BYTES = {"owner": 20, "commitment": 32, "head": 32, "previous": 32, "root": 32}


def test_privacy_consent_state_holds_only_ids_hashes_dids_purposes_and_heights(world):
    """A dump of every consent key: each value is one of the module's records, whose strings are
    identifiers, DIDs or purpose codes and whose bytes are addresses or 32-byte hashes."""
    decoders = [msgspec.msgpack.Decoder(kind) for kind in (DataSetRecord, ConsentRecord, AccessLogAnchor, RecordsRoot,
                                                               GatewayRoot)]
    seen = set()
    for key, raw in consent_state(world.ledger):
        if raw in (b"",) or key[1] in (0x05, 0x07, 0x0A):  # index entries and counters hold no record
            assert len(raw) <= 8
            continue
        record = None
        for decoder in decoders:
            try:
                record = decoder.decode(raw)
                break
            except msgspec.ValidationError:
                continue
        assert record is not None, key
        seen.add(type(record).__name__)
        for name in record.__struct_fields__:
            value = getattr(record, name)
            if isinstance(value, str):
                assert name in ALLOWED_STRINGS, name
                assert IDENTIFIER.fullmatch(value) or value in PURPOSES or value in (SCHEMA, "owner"), (name, value)
            elif isinstance(value, bytes):
                assert len(value) == ALLOWED_BYTES[name], name
            else:
                assert isinstance(value, int), name
    assert seen == {"DataSetRecord", "ConsentRecord", "AccessLogAnchor", "RecordsRoot", "GatewayRoot"}


# -- wiring: devices and identity are reached only through consent/expected.py ----------------------

class FakeIdentity:
    """Identity as consent/expected.py declares it: two DIDs in memory, one accredited gateway."""

    def __init__(self, gateway: str, insurer: str) -> None:
        from cityledger.modules.identity.messages import KIND_ORGANISATION, DidRecord

        key = PrivateKey(1, b"\x07" * 32)
        self.records = {did: DidRecord(did, KIND_ORGANISATION, key.signer(), [], [], 1, 1, 1, False)
                        for did in (gateway, insurer)}
        self.gateway = gateway

    def get_did(self, state, did):
        return self.records.get(did)

    def is_accredited(self, state, did, credential_type):
        return did == self.gateway and credential_type == GATEWAY_TYPE


class FakeDevices:
    """Devices as consent/expected.py declares it: one active device owned by one account; records each ask."""

    def __init__(self, device: str, owner: bytes) -> None:
        from cityledger.modules.devices import DeviceRecord

        self.record = DeviceRecord(device, "vehicle", "M-1", "did:city:Maker", owner, b"", 1, "active", 1, 1)
        self.asked: list[str] = []

    def get_device(self, state, did):
        self.asked.append(did)
        return self.record if did == self.record.did else None


def test_consent_writes_only_its_own_keys_and_asks_its_protocols():
    from cityledger.core.state import Overlay
    from cityledger.modules import consent
    from cityledger.modules.base import Context

    owner = PrivateKey(1, b"\x08" * 32)
    device, gateway, insurer = "did:city:Device1", "did:city:Gateway1", "did:city:Buyer1"
    identity, devices = FakeIdentity(gateway, insurer), FakeDevices(device, owner.address())
    module = consent.new_module(identity, devices)
    state = Overlay(DictState())
    ctx = Context(state, "wiring-city", 5, 0, sender=owner.address(), signer=owner.signer())
    module.handlers[RegisterDataSet](ctx, RegisterDataSet(SCHEMA, sha256(b"c"), device, gateway, ""))
    data_set = compute_data_set_id(owner.address(), device, SCHEMA, sha256(b"c"))
    module.handlers[GrantConsent](ctx, GrantConsent(data_set, insurer, "research", 1, 5, 100))
    assert devices.asked == [device]
    assert state.writes and all(key[0] == PREFIX_CONSENT for key in state.writes)
    assert is_consent_valid(identity, state, data_set, insurer, "research", 5)
    for invariant in module.invariants:
        invariant(state)


def test_invalid_query_arguments_are_named(world):
    data_set = world.data_set(b"queries")
    for height in ("abc", "-1", " 5", "5\n", str(2**63), "٣"):
        with pytest.raises(ValueError, match="height"):
            world.valid(data_set, world.insurer.did, "research", height)
    with pytest.raises(ValueError, match="after"):
        world.ledger.query("/consent/consents", data_set=data_set, after="x")
    with pytest.raises(LookupError, match="data set"):
        world.ledger.query("/consent/data_set", id=data_set + "\n")
    with pytest.raises(LookupError, match="consent"):
        world.ledger.query("/consent/consent", id="999")
    assert world.valid("nonsense", world.insurer.did, "research", 5) == {"valid": False, "consent": None}
    assert world.ledger.query("/consent/consumer", consumer="did:city:nobody") == {"items": [], "next": None}
