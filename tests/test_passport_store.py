"""PassportStore: tiers encrypted at rest, exports that hold no higher tier, growing versions, a chained access log."""

import copy
import dataclasses
import sqlite3
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passport_example import PASSPORT_ID, example, leaves

from cityledger.core.errors import InvariantBroken
from cityledger.offchain.passport.accesslog import GENESIS_HEX, verify_chain
from cityledger.offchain.passport.schema import template_of
from cityledger.offchain.passport.store import DB_FILE, PassportStore, load_or_create_master_key, new_master_key
from cityledger.offchain.passport.tiers import compute_tier_hash, split, tier_row
from cityledger.offchain.passport.types import (TIERS, AccessDenied, LogBroken, NotFound, PassportError,
                                                PassportInvalid, VersionError)
from cityledger.offchain.passport.validate import validate_document

READER = dict(reader_did="did:city:reader1", height=7, time_s=1_790_000_000)


@pytest.fixture
def store(tmp_path):
    store = PassportStore(tmp_path / "passports", new_master_key())
    store.put_document(example())
    yield store
    store.close()


def test_put_records_one_version_per_tier_with_its_hash(store):
    parts = split(example())
    for tier in TIERS:
        (version,) = store.get_versions(PASSPORT_ID, tier)
        assert (version.version, version.hash_hex) == (1, compute_tier_hash(parts[tier]))


@pytest.mark.parametrize("tier", TIERS)
def test_export_holds_no_field_of_a_higher_tier(store, tier):
    exported = store.export(PASSPORT_ID, tier, proof_ok=True, **READER)
    rank = TIERS.index(tier)
    for path, value in leaves(exported):
        if value == {}:
            continue  # A placeholder keeping array indices in line.
        assert TIERS.index(tier_row(template_of(path)).tier) <= rank, path
    # Lower tiers lack fields the full schema requires, only those withheld on purpose.
    missing = {issue.path for issue in validate_document(exported)}
    if tier == "authority":
        assert exported == example() and missing == set()
    elif tier == "legitimate":
        assert "$.conformity.resultOfTestReport" in missing and "$.handling" not in missing
    else:
        assert {"$.handling", "$.safety.dismantling"} <= missing
        assert "dynamic" not in exported["performance"] and "intoServiceDate" not in exported["operation"]


def test_export_tiers_nest(store):
    public = store.export(PASSPORT_ID, "public", proof_ok=False, **READER)
    legitimate = store.export(PASSPORT_ID, "legitimate", proof_ok=True, **READER)
    public_leaves, legit_leaves = dict(leaves(public)), dict(leaves(legitimate))
    assert all(legit_leaves.get(path) == value for path, value in public_leaves.items() if value != {})
    assert len(legit_leaves) > len(public_leaves)


@pytest.mark.parametrize("tier", ["legitimate", "authority"])
def test_invalid_restricted_tier_without_proof_refused_and_not_logged(store, tier):
    for proof in (False, None, 1, "yes"):
        with pytest.raises(AccessDenied) as caught:
            store.read_tier(PASSPORT_ID, tier, proof_ok=proof, **READER)
        assert caught.value.field == "proof"
        with pytest.raises(AccessDenied):
            store.export(PASSPORT_ID, tier, proof_ok=proof, **READER)
    assert store.get_log_head(PASSPORT_ID) == (0, GENESIS_HEX)


def test_public_read_needs_no_proof_and_is_not_logged(store):
    part = store.read_tier(PASSPORT_ID, "public", proof_ok=False, **READER)
    assert part == split(example())["public"]
    assert store.get_log(PASSPORT_ID) == []


def test_invalid_reader_and_passport_ids(store):
    with pytest.raises(PassportError) as caught:
        store.read_tier(PASSPORT_ID, "public", proof_ok=False, reader_did="alice", height=1, time_s=1)
    assert caught.value.field == "reader_did"
    with pytest.raises(PassportError) as caught:
        store.read_tier(PASSPORT_ID, "public", proof_ok=False, reader_did="did:x:y", height=-1, time_s=1)
    assert caught.value.field == "height"
    with pytest.raises(PassportError) as caught:
        store.read_tier("../../etc", "public", proof_ok=False, **READER)
    assert caught.value.field == "passport_id"
    with pytest.raises(PassportError) as caught:
        store.read_tier(PASSPORT_ID, "secret", proof_ok=True, **READER)
    assert caught.value.field == "tier"
    with pytest.raises(NotFound):
        store.read_tier("6a1d4e2f-3b5c-4d7e-9f81-2c4b6d8e0a13", "public", proof_ok=False, **READER)


def test_invalid_document_refused_with_paths_and_nothing_stored(tmp_path):
    store = PassportStore(tmp_path, new_master_key())
    doc = example()
    del doc["identification"]["idDmc"]
    doc["metadata"]["issueDate"] = "2026-02-30"
    with pytest.raises(PassportInvalid) as caught:
        store.put_document(doc)
    assert [issue.path for issue in caught.value.issues] == ["$.identification.idDmc", "$.metadata.issueDate"]
    assert all(store.get_versions(PASSPORT_ID, tier) == [] for tier in TIERS)


def _restricted_strings():
    """Every string value of the restricted tiers in the example (each is distinct from public ones)."""
    parts = split(example())
    public = {value for _, value in leaves(parts["public"]) if isinstance(value, str)}
    restricted = {value for tier in ("legitimate", "authority") for _, value in leaves(parts[tier])
                  if isinstance(value, str) and len(value) >= 6}
    return restricted - public


def test_encryption_at_rest_no_restricted_value_in_clear(store):
    secrets = _restricted_strings()
    assert len(secrets) > 40 and "LEGIT location 38" in secrets
    blobs = b"".join(path.read_bytes() for path in store.directory.rglob("*") if path.is_file())
    assert blobs  # the database and the tier files
    found = [value for value in secrets if value.encode() in blobs]
    assert found == []
    # The public tier is encrypted too: even the DMC is not in the files.
    assert example()["identification"]["idDmc"].encode() not in blobs


def test_a_moved_or_changed_blob_fails_loudly(store):
    folder = store.directory / "blobs" / PASSPORT_ID
    (folder / "legitimate.1.bin").write_bytes((folder / "authority.1.bin").read_bytes())
    with pytest.raises(InvariantBroken):
        store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, **READER)


def test_wrong_master_key_cannot_open(tmp_path):
    store = PassportStore(tmp_path, new_master_key())
    store.put_document(example())
    store.close()
    other = PassportStore(tmp_path, new_master_key())
    with pytest.raises(PassportError) as caught:
        other.read_tier(PASSPORT_ID, "public", proof_ok=False, **READER)
    assert caught.value.field == "master_key"


def test_master_key_file_created_owner_only(tmp_path):
    key = load_or_create_master_key(tmp_path / "passport.key")
    assert load_or_create_master_key(tmp_path / "passport.key") == key
    assert (tmp_path / "passport.key").stat().st_mode & 0o777 == 0o600


def _with_soc(value):
    """The example with a new state of charge (a legitimate-tier field)."""
    doc = example()
    doc["performance"]["dynamic"]["stateOfCharge"]["value"] = value
    return doc


def test_versions_grow_only_for_the_tier_that_changed(store):
    assert store.put_document(example()) == []  # Nothing changed, no new version.
    (written,) = store.put_document(_with_soc(41.5))
    assert (written.tier, written.version) == ("legitimate", 2)
    assert [v.version for v in store.get_versions(PASSPORT_ID, "legitimate")] == [1, 2]
    assert [v.version for v in store.get_versions(PASSPORT_ID, "public")] == [1]
    old = store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, version=1, **READER)
    new = store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, **READER)
    assert old != new and new["performance"]["dynamic"]["stateOfCharge"]["value"] == 41.5
    exported = store.export(PASSPORT_ID, "authority", proof_ok=True, **READER)
    assert exported == _with_soc(41.5)


def test_invalid_tier_version_not_next_refused(store):
    part = split(_with_soc(12.0))["legitimate"]
    for version in (0, 1, 3, 2**31):
        with pytest.raises(VersionError) as caught:
            store.put_tier_version(PASSPORT_ID, "legitimate", version, part)
        assert caught.value.field == "version"
    assert [v.version for v in store.get_versions(PASSPORT_ID, "legitimate")] == [1]
    written = store.put_tier_version(PASSPORT_ID, "legitimate", 2, part)
    assert (written.version, written.hash_hex) == (2, compute_tier_hash(part))
    with pytest.raises(VersionError):
        store.put_tier_version(PASSPORT_ID, "legitimate", 2, part)


def test_invalid_tier_version_with_foreign_or_invalid_fields_refused(store):
    parts = split(example())
    with pytest.raises(PassportError) as caught:
        store.put_tier_version(PASSPORT_ID, "legitimate", 2, parts["public"])
    assert caught.value.field == "part"
    broken = copy.deepcopy(parts["legitimate"])
    broken["operation"]["intoServiceDate"] = "2026-02-30"
    with pytest.raises(PassportInvalid) as caught:
        store.put_tier_version(PASSPORT_ID, "legitimate", 2, broken)
    assert caught.value.issues[0].path == "$.operation.intoServiceDate"
    assert len(store.get_versions(PASSPORT_ID, "legitimate")) == 1


def test_every_restricted_read_is_logged_and_chained(store):
    store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, **READER)
    store.export(PASSPORT_ID, "authority", proof_ok=True, reader_did="did:city:msa", height=9, time_s=5)
    entries = store.get_log(PASSPORT_ID)
    assert [(e.seq, e.tier, e.reader_did, e.height) for e in entries] == [
        (1, "legitimate", "did:city:reader1", 7), (2, "legitimate", "did:city:msa", 9),
        (3, "authority", "did:city:msa", 9)]
    assert entries[0].prev_hex == GENESIS_HEX and entries[1].prev_hex == entries[0].hash_hex
    assert store.verify_log(PASSPORT_ID) == store.get_log_head(PASSPORT_ID)[1] == entries[-1].hash_hex
    assert store.get_log(PASSPORT_ID, after_seq=1, limit=1) == entries[1:2]


def test_invalid_log_with_an_entry_omitted_breaks_the_chain(store):
    for height in range(4):
        store.read_tier(PASSPORT_ID, "legitimate", proof_ok=True, reader_did="did:city:r", height=height, time_s=1)
    entries = store.get_log(PASSPORT_ID)
    assert verify_chain(entries) == store.get_log_head(PASSPORT_ID)[1]
    with pytest.raises(LogBroken):
        verify_chain(entries[:1] + entries[2:])
    # Renumbering the rest to hide the gap does not help: the next entry names the dropped one's hash.
    renumbered = entries[:1] + [dataclasses.replace(e, seq=e.seq - 1) for e in entries[2:]]
    with pytest.raises(LogBroken) as caught:
        verify_chain(renumbered)
    assert caught.value.field == "prev"
    # The same, done to the database behind the store's back.
    db = sqlite3.connect(store.directory / DB_FILE)
    with db:
        db.execute("DELETE FROM passport_log WHERE seq = 2")
    db.close()
    with pytest.raises(LogBroken):
        store.verify_log(PASSPORT_ID)


def test_invalid_log_with_an_entry_changed_breaks_the_chain(store):
    store.read_tier(PASSPORT_ID, "authority", proof_ok=True, **READER)
    (entry,) = store.get_log(PASSPORT_ID)
    with pytest.raises(LogBroken) as caught:
        verify_chain([dataclasses.replace(entry, reader_did="did:city:someone-else")])
    assert caught.value.field == "hash"
    with pytest.raises(PassportError):
        store.get_log(PASSPORT_ID, limit=0)


def test_invalid_document_not_json_or_too_large(tmp_path):
    store = PassportStore(tmp_path, new_master_key())
    doc = example()
    doc["performance"]["dynamic"]["stateOfCharge"]["value"] = float("nan")
    with pytest.raises(PassportInvalid) as caught:
        store.put_document(doc)
    assert caught.value.issues[0].path == "$"
    doc = example()
    doc["performance"]["dynamic"]["negativeEvents"][0]["content"] = "x" * (4 * 1024 * 1024)
    with pytest.raises(PassportInvalid) as caught:
        store.put_document(doc)
    assert "bytes of JSON" in str(caught.value)
    assert store.get_versions(PASSPORT_ID, "legitimate") == []


EDITS = {
    "public": lambda doc, n: doc["characteristics"]["physicalDimension"]["weight"].update(value=400 + n),
    "legitimate": lambda doc, n: doc["performance"]["dynamic"]["stateOfCharge"].update(value=n),
    "authority": lambda doc, n: doc["conformity"]["resultOfTestReport"][0].update(header=f"AUTH report {n}"),
}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(TIERS), st.integers(0, 3), st.integers(0, 4)), max_size=6))
def test_history_only_grows_under_random_updates(ops):
    with tempfile.TemporaryDirectory() as folder:
        store = PassportStore(folder, new_master_key())
        doc = example()
        store.put_document(doc)
        history = {tier: store.get_versions(PASSPORT_ID, tier) for tier in TIERS}
        for tier, value, version in ops:
            EDITS[tier](doc, value)
            try:
                if version:
                    store.put_tier_version(PASSPORT_ID, tier, version, split(doc)[tier])
                else:
                    store.put_document(doc)
            except VersionError:
                doc = store.export(PASSPORT_ID, "authority", proof_ok=True, **READER)
            for each in TIERS:
                now = store.get_versions(PASSPORT_ID, each)
                # Old versions never change or vanish; versions count 1, 2, 3, ... without a gap.
                assert now[:len(history[each])] == history[each]
                assert [v.version for v in now] == list(range(1, len(now) + 1))
                history[each] = now
        for tier in TIERS:
            for stored in history[tier]:
                part = store.read_tier(PASSPORT_ID, tier, proof_ok=True, version=stored.version, **READER)
                assert compute_tier_hash(part) == stored.hash_hex
        assert store.export(PASSPORT_ID, "authority", proof_ok=True, **READER) == doc
        store.verify_log(PASSPORT_ID)
        store.close()
