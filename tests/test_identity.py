"""identity module on a real store: DIDs (create, resolve, rotate, deactivate, k-of-n), the
trusted-issuer registry (governance only) and anchored AnonCreds objects, with every refusal."""

from __future__ import annotations

import json

import msgspec
import pydid
import pytest

from test_identity_fixtures import City, fast_cred_defs
from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey, make_signer
from cityledger.core.state import DictState, Overlay
from cityledger.modules.base import Context
from cityledger.modules.governance import SubmitProposal
from cityledger.modules.identity import (
    MODULE,
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    AccreditIssuer,
    AnchorCredDef,
    AnchorRevRegDef,
    AnchorSchema,
    CreateDid,
    DeactivateDid,
    Service,
    UpdateDid,
    UpdateStatusList,
    VerificationKey,
    compute_did,
    compute_multikey,
    compute_schema_id,
    get_did,
    get_status_list,
    is_did,
    render_resolution,
)
from cityledger.modules.identity.did import b58decode, b58encode, parse_multikey
from cityledger.offchain.identity import RESIDENT_ID, RESIDENT_ID_TYPE


@pytest.fixture
def city(tmp_path):
    return City(tmp_path)


def key(n: int, scheme: int = 1) -> PrivateKey:
    return PrivateKey(scheme, bytes([n]) * 32)


def org_document(k: PrivateKey, salt: bytes = b"org"):
    keys = [VerificationKey("key-1", k.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]
    services = [Service("tails", "AnonCredsTailsServer", "https://office.city.example/tails")]
    return CreateDid(salt, k.signer(), keys, services)


def create_org(city: City, k: PrivateKey, salt: bytes = b"org") -> str:
    city.ledger.send([k], [org_document(k, salt)]).raise_for_error()
    return compute_did(k.signer(), salt)


def resolve(city: City, did: str) -> dict:
    return city.ledger.query("/identity/did", did=did)


def assert_error(outcome, codespace: str, name: str) -> None:
    from cityledger.modules.identity import ERRORS as identity_errors

    catalogs = {"identity": identity_errors}
    assert outcome.codespace == codespace, outcome
    assert catalogs[codespace].codes()[outcome.code] == name, outcome


# -- identifiers -----------------------------------------------------------------------------------

def test_base58_round_trip_and_did_syntax():
    for data in (b"", b"\x00", b"\x00\x01", bytes(range(16)), b"\xff" * 33):
        assert b58decode(b58encode(data)) == data
    did = compute_did(key(1).signer(), b"")
    assert is_did(did) and did.startswith("did:city:")
    assert not is_did("did:city:0OIl") and not is_did("did:web:example.com") and not is_did(did + "1")


def test_multikey_encodes_both_schemes():
    for scheme in (1, 2):
        public = key(3, scheme).public_key
        assert parse_multikey(compute_multikey(public)) == public
    assert compute_multikey(key(3).public_key).startswith("z6Mk")  # the usual Ed25519 Multikey prefix


def test_did_is_self_certifying_from_controller_and_salt(city):
    k = key(7)
    did = create_org(city, k, b"salt-1")
    assert did == compute_did(k.signer(), b"salt-1") != compute_did(k.signer(), b"salt-2")


# -- create and resolve ----------------------------------------------------------------------------

def test_create_and_resolve_w3c_document_validates_with_pydid(city):
    k = key(7)
    did = create_org(city, k)
    result = resolve(city, did)
    document = pydid.deserialize_document(result["didDocument"])
    assert str(document.id) == did
    assert [str(ref) for ref in result["didDocument"]["authentication"]] == [f"{did}#key-1"]
    method = document.dereference(f"{did}#key-1")
    assert method.public_key_multibase == compute_multikey(k.public_key)
    assert result["didDocumentMetadata"]["versionId"] == "1"
    assert result["didDocumentMetadata"]["deactivated"] is False
    assert result["didDocument"]["service"][0]["serviceEndpoint"] == "https://office.city.example/tails"


def test_p256_keys_resolve_as_multikey(city):
    k = key(8, scheme=2)
    did = create_org(city, k)
    document = pydid.deserialize_document(resolve(city, did)["didDocument"])
    assert document.dereference(f"{did}#controller-1").public_key_multibase.startswith("zDn")


def test_invalid_create_by_another_signer_is_refused(city):
    k, other = key(7), key(8)
    outcome = city.ledger.send([other], [org_document(k)])
    assert_error(outcome, "identity", "unauthorized")


def test_invalid_create_twice_is_refused(city):
    k = key(7)
    create_org(city, k)
    assert_error(city.ledger.send([k], [org_document(k)]), "identity", "did_exists")


@pytest.mark.parametrize("mutate, field", [
    (lambda m: msgspec.structs.replace(m, keys=[VerificationKey("Key 1", m.keys[0].key, ["authentication"])]),
     "fragment"),
    (lambda m: msgspec.structs.replace(m, keys=[VerificationKey("key-1", m.keys[0].key, ["keyAgreement"])]),
     "purposes"),
    (lambda m: msgspec.structs.replace(m, keys=[VerificationKey("controller-1", m.keys[0].key, ["authentication"])]),
     "fragment"),
    (lambda m: msgspec.structs.replace(m, services=[Service("tails", "Tails", "ftp://x")]), "endpoint"),
    (lambda m: msgspec.structs.replace(m, keys=m.keys * 2), "fragments"),
    (lambda m: msgspec.structs.replace(m, salt=b"s" * 33), "salt"),
])
def test_invalid_document_is_refused(city, mutate, field):
    k = key(7)
    outcome = city.ledger.send([k], [mutate(org_document(k))])
    assert_error(outcome, "identity", "invalid_document")
    assert field in outcome.log


def test_unknown_did_resolves_to_not_found(city):
    with pytest.raises(LookupError):
        resolve(city, compute_did(key(9).signer(), b""))
    assert render_resolution(None, "did:city:x")["didResolutionMetadata"]["error"] == "notFound"


# -- update, key rotation, deactivation ------------------------------------------------------------

def rotate(city: City, did: str, signing: list, new: PrivateKey, version: int, signer=None):
    keys = [VerificationKey("key-1", new.public_key, [PURPOSE_AUTHENTICATION])]
    return city.ledger.send(signing, [UpdateDid(did, version, new.signer(), keys, [])], signer)


def test_rotation_moves_control_and_the_rotated_out_key_can_no_longer_act(city):
    old, new = key(7), key(8)
    did = create_org(city, old)
    rotate(city, did, [old], new, 1).raise_for_error()
    result = resolve(city, did)
    assert result["didDocumentMetadata"]["versionId"] == "2"
    multibases = [m["publicKeyMultibase"] for m in result["didDocument"]["verificationMethod"]]
    assert compute_multikey(old.public_key) not in multibases
    # The old key can neither update the DID again, nor deactivate it, nor anchor anything under it.
    assert_error(rotate(city, did, [old], old, 2), "identity", "unauthorized")
    assert_error(city.ledger.send([old], [DeactivateDid(did)]), "identity", "unauthorized")
    assert_error(city.ledger.send([old], [AnchorSchema(did, "x", "1.0", ["a"])]), "identity", "unauthorized")
    # The new key can.
    city.ledger.send([new], [AnchorSchema(did, "x", "1.0", ["a"])]).raise_for_error()


def test_invalid_update_with_stale_version_is_refused(city):
    k = key(7)
    did = create_org(city, k)
    assert_error(rotate(city, did, [k], k, 5), "identity", "version_mismatch")


def test_k_of_n_controller_needs_threshold_signatures(city):
    a, b, c = key(11), key(12), key(13)
    controller = make_signer(2, [a.public_key, b.public_key, c.public_key])
    city.ledger.send([a, b], [CreateDid(b"council", controller, [], [])], controller).raise_for_error()
    did = compute_did(controller, b"council")
    assert resolve(city, did)["didDocumentMetadata"]["cityledger:controllerThreshold"] == 2
    assert len(resolve(city, did)["didDocument"]["capabilityInvocation"]) == 3
    # One member alone (its own 1-of-1 account) cannot act for the organisation.
    assert_error(city.ledger.send([a], [DeactivateDid(did)]), "identity", "unauthorized")
    # Two of three can rotate to a new 2-of-2 controller, after which c is out.
    new_controller = make_signer(2, [a.public_key, b.public_key])
    update = UpdateDid(did, 1, new_controller, [], [])
    city.ledger.send([b, c], [update], controller).raise_for_error()
    assert_error(city.ledger.send([a, c], [DeactivateDid(did)], controller), "identity", "unauthorized")
    city.ledger.send([a, b], [DeactivateDid(did)], new_controller).raise_for_error()


def test_deactivated_did_cannot_act_and_resolves_without_keys(city):
    k = key(7)
    did = create_org(city, k)
    city.ledger.send([k], [DeactivateDid(did)]).raise_for_error()
    result = resolve(city, did)
    assert result["didDocumentMetadata"]["deactivated"] is True
    assert "verificationMethod" not in result["didDocument"]
    pydid.deserialize_document(result["didDocument"])
    assert_error(rotate(city, did, [k], k, 2), "identity", "did_deactivated")
    assert_error(city.ledger.send([k], [AnchorSchema(did, "x", "1.0", ["a"])]), "identity", "did_deactivated")
    assert_error(city.ledger.send([k], [DeactivateDid(did)]), "identity", "did_deactivated")


def test_failed_message_leaves_no_partial_writes():
    """A handler that raises after writing: the app's journal drops the writes (checked on Overlay)."""
    k = key(7)
    base = Overlay(DictState())
    journal = Overlay(base)
    ctx = Context(state=journal, chain_id="c", height=1, time_ns=0, sender=k.address(), signer=k.signer())
    MODULE.handlers[CreateDid](ctx, org_document(k))
    assert get_did(journal, compute_did(k.signer(), b"org")) is not None
    assert get_did(base, compute_did(k.signer(), b"org")) is None  # nothing folded until the tx succeeds


# -- trusted-issuer registry -----------------------------------------------------------------------

def test_accreditation_only_through_governance(city):
    k = key(7)
    did = create_org(city, k)
    # An organisation cannot accredit itself: governance refuses a non-member's proposal.
    outcome = city.ledger.send([k], [SubmitProposal(encode(AccreditIssuer(did, RESIDENT_ID)))])
    assert outcome.codespace == "governance" and not outcome.ok
    assert city.ledger.query("/identity/issuers")["accreditations"] == []
    assert city.accredit(did, RESIDENT_ID) == "executed"
    listed = city.ledger.query("/identity/issuers", credential_type=RESIDENT_ID)["accreditations"]
    assert [item["did"] for item in listed] == [did]
    assert city.withdraw(did, RESIDENT_ID) == "executed"
    assert city.ledger.query("/identity/issuers")["accreditations"] == []


def test_invalid_accreditations_fail_the_proposal(city):
    unknown = compute_did(key(9).signer(), b"")
    assert city.accredit(unknown, RESIDENT_ID) == "failed"
    did = create_org(city, key(7))
    assert city.accredit(did, "Not A Type") == "failed"
    assert city.withdraw(did, RESIDENT_ID) == "failed"


# -- anchored AnonCreds objects --------------------------------------------------------------------

def test_anchors_resolve_as_anoncreds_objects(city):
    office = city.id_office()
    published = office.published[RESIDENT_ID]
    schema = city.ledger.query("/identity/schema", id=published.schema_id)["schema"]
    assert schema == {"issuerId": office.did, "name": RESIDENT_ID, "version": "1.0",
                      "attrNames": list(RESIDENT_ID_TYPE.attributes)}
    cred_def = city.ledger.query("/identity/cred_def", id=published.cred_def_id)["cred_def"]
    assert cred_def["issuerId"] == office.did and "revocation" in cred_def["value"]
    registry = city.ledger.query("/identity/rev_reg_def", id=published.rev_reg_id)["rev_reg_def"]
    tails_hash = registry["value"]["tailsHash"]
    assert registry["value"]["tailsLocation"] == office.tails.location(tails_hash)
    from cityledger.offchain.identity import compute_tails_hash

    assert compute_tails_hash(office.serve_tails(tails_hash)) == tails_hash
    status = city.ledger.query("/identity/status_list", id=published.rev_reg_id)["status_list"]
    assert set(status["revocationList"]) == {0} and len(status["revocationList"]) == RESIDENT_ID_TYPE.max_cred_num


def test_invalid_cred_def_by_unaccredited_issuer_is_refused(city):
    office = city.office("rogue", 0x51)
    k = office.keys[0]
    city.ledger.send([k], [AnchorSchema(office.did, RESIDENT_ID, "1.0", list(RESIDENT_ID_TYPE.attributes))])
    schema_id = compute_schema_id(office.did, RESIDENT_ID, "1.0")
    outcome = city.ledger.send([k], [AnchorCredDef(office.did, schema_id, "1", b'{"primary":{}}')])
    assert_error(outcome, "identity", "issuer_not_accredited")
    with fast_cred_defs():
        from cityledger.offchain.identity import LedgerError

        with pytest.raises(LedgerError, match="not accredited"):
            office.publish(RESIDENT_ID_TYPE)


def test_invalid_anchor_fields_are_refused(city):
    office = city.id_office()
    k, did = office.keys[0], office.did
    published = office.published[RESIDENT_ID]
    cases = [
        (AnchorSchema(did, "bad name", "1.0", ["a"]), "invalid_anchored_object"),
        (AnchorSchema(did, "x", "1.0", ["b", "a"]), "invalid_anchored_object"),
        (AnchorSchema(did, RESIDENT_ID, "1.0", list(RESIDENT_ID_TYPE.attributes)), "already_anchored"),
        (AnchorCredDef(did, did + "/anoncreds/v0/SCHEMA/none/1.0", "1", b"{}"), "unknown_anchored_object"),
        (AnchorCredDef(did, published.schema_id, "2", b'{ "primary": {} }'), "invalid_anchored_object"),
        (AnchorCredDef(did, published.schema_id, "2", b'{"primary":{"n":"1"}}'), "invalid_anchored_object"),
        (AnchorRevRegDef(did, published.cred_def_id, "2", 0, b"{}", "x", "https://x"), "invalid_anchored_object"),
    ]
    for message, name in cases:
        assert_error(city.ledger.send([k], [message]), "identity", name)


def test_status_list_rules(city):
    office = city.id_office()
    k, published = office.keys[0], office.published[RESIDENT_ID]
    rev_id = published.rev_reg_id
    latest = get_status_list(city.ledger.store, rev_id)
    size = len(latest.revoked)
    revoked_one = bytes([0b10]) + bytes(size - 1)
    accumulator = latest.accumulator
    # Only the registry issuer's controller may publish.
    intruder = key(60)
    assert_error(city.ledger.send([intruder], [UpdateStatusList(rev_id, revoked_one, accumulator)]),
                 "identity", "unauthorized")
    # The bit field must cover exactly max_cred_num credentials.
    assert_error(city.ledger.send([k], [UpdateStatusList(rev_id, revoked_one[:-1], accumulator)]),
                 "identity", "invalid_status_list")
    # A revocation is anchored with the block height as its timestamp ...
    outcome = city.ledger.send([k], [UpdateStatusList(rev_id, revoked_one, accumulator)]).raise_for_error()
    assert get_status_list(city.ledger.store, rev_id).timestamp == outcome.height
    # ... the older list stays readable by its timestamp ...
    assert get_status_list(city.ledger.store, rev_id, latest.timestamp).revoked == latest.revoked
    # ... and it cannot be undone.
    assert_error(city.ledger.send([k], [UpdateStatusList(rev_id, bytes(size), accumulator)]),
                 "identity", "invalid_status_list")
    # Two updates of one registry in one block are refused (one timestamp, one list).
    raws = [city.ledger.build([k], [UpdateStatusList(rev_id, revoked_one, accumulator)], nonce=n)
            for n in (city.ledger.nonce(k.signer()), city.ledger.nonce(k.signer()) + 1)]
    first, second = city.ledger.commit_block(raws)
    assert first.ok and second.codespace == "identity" and "already updated" in second.log


def test_invariants_hold_after_identity_operations(city):
    city.id_office()
    create_org(city, key(7))
    city.ledger.app.check_invariants()


def test_query_did_refuses_malformed_input(city):
    with pytest.raises(ValueError):
        city.ledger.query("/identity/did", did="not-a-did")
    assert json.loads(json.dumps(resolve(city, create_org(city, key(7)))))  # JSON-serialisable


def test_resolution_at_a_past_height_shows_the_document_then(city):
    old, new = key(7), key(8)
    did = create_org(city, old)
    before = city.ledger.height()
    rotate(city, did, [old], new, 1).raise_for_error()
    from cityledger.modules.identity import resolve_did

    then = resolve_did(city.ledger.state_at(before), did)
    now = resolve_did(city.ledger.state_at(city.ledger.height()), did)
    assert then["didDocumentMetadata"]["versionId"] == "1" and now["didDocumentMetadata"]["versionId"] == "2"
    assert resolve_did(city.ledger.state_at(before), "did:city:nope")["didResolutionMetadata"]["error"] == "notFound"


def test_device_dids_are_not_deactivated_directly(city):
    from cityledger.core.errors import TxError
    from cityledger.modules.identity import KIND_DEVICE, create_did_record
    from cityledger.modules.identity.errors import ERR_WRONG_KIND

    from helpers import assert_error_kind

    device = key(30, scheme=2)
    ctx = Context(state=Overlay(DictState()), chain_id="c", height=1, time_ns=0, sender=device.address(),
                  signer=device.signer())
    record = create_did_record(ctx, KIND_DEVICE, device.signer(), b"", [], [])
    with pytest.raises(TxError) as raised:
        MODULE.handlers[DeactivateDid](ctx, DeactivateDid(record.did))
    assert_error_kind(raised.value, ERR_WRONG_KIND)  # devices are decommissioned instead


def test_genesis_dids_and_accreditations(tmp_path):
    from cityledger.app import abc
    from cityledger.app.application import CityApp
    from cityledger.node.modules import default_modules
    from cityledger.core.storage import Store
    from cityledger.core.types import address_to_str
    from cityledger.modules.identity import is_accredited

    member, office = key(1), key(2)
    genesis = {
        "governance": {"members": [{"address": address_to_str(member.address())}], "threshold": 1},
        "identity": {"dids": [{"controller": {"threshold": 1, "keys": [{"scheme": "ed25519",
                                                                        "key": office.public_key.key.hex()}]},
                               "salt": b"id-office".hex(),
                               "keys": [{"fragment": "key-1", "scheme": "ed25519", "key": office.public_key.key.hex(),
                                         "purposes": ["assertionMethod"]}],
                               "services": [{"fragment": "tails", "type": "AnonCredsTailsServer",
                                             "endpoint": "https://id.city.example/tails"}],
                               "accreditations": [RESIDENT_ID]}]},
    }
    app = CityApp(Store(tmp_path / "db"), default_modules(), "genesis-city")
    app.init_chain(abc.InitChainRequest("genesis-city", 1, 1, json.dumps(genesis).encode()))
    did = compute_did(office.signer(), b"id-office")
    assert is_accredited(app.store, did, RESIDENT_ID)
    assert get_did(app.store, did).services[0].endpoint == "https://id.city.example/tails"
    bad = dict(genesis, identity={"dids": [{"controller": {"threshold": 2, "keys": []}}]})
    other = CityApp(Store(tmp_path / "db2"), default_modules(), "genesis-city")
    with pytest.raises(ValueError, match="identity.dids"):
        other.init_chain(abc.InitChainRequest("genesis-city", 1, 1, json.dumps(bad).encode()))
