"""BatteryPass 6.1.0 validation: the schema's draft-04 rules plus the checks it leaves loose, each error with its path."""

import json

import pytest

from passport_example import example

from cityledger.offchain.passport.schema import field_specs, leaf_paths, load_schema
from cityledger.offchain.passport.types import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, PassportInvalid
from cityledger.offchain.passport.validate import check_document, load_document, validate_document


def paths(document):
    """The distinct paths of every issue of `document` (a value can break the schema and a strict check)."""
    return sorted({issue.path for issue in validate_document(document)})


def test_example_is_valid_and_fills_every_schema_leaf():
    doc = example()
    assert validate_document(doc) == []
    from passport_example import leaves
    from cityledger.offchain.passport.schema import template_of
    filled = {template_of(path) for path, _ in leaves(doc)}
    assert set(leaf_paths()) <= filled


def test_shipped_schema_is_draft_04_and_equals_the_shared_copy():
    schema = load_schema()
    assert schema["$schema"].startswith("http://json-schema.org/draft-04/")
    shared = "/work/shared/data/tractusx-battery-pass-6.1.0/BatteryPass-schema.json"
    try:
        assert json.loads(open(shared, encoding="utf-8").read()) == schema
    except FileNotFoundError:
        pytest.skip("shared data folder not on this machine")


def test_invalid_missing_required_field_named_by_path():
    doc = example()
    del doc["identification"]["idDmc"]
    assert paths(doc) == ["$.identification.idDmc"]
    with pytest.raises(PassportInvalid) as caught:
        check_document(doc)
    assert caught.value.issues[0].path == "$.identification.idDmc"
    assert "$.identification.idDmc" in str(caught.value)


def test_invalid_every_error_reported_with_its_path():
    doc = example()
    doc["identification"]["category"] = "tractor"
    doc["materials"]["composition"][1]["recycled"] = 101
    doc["metadata"]["economicOperatorId"] = "BPNL1"
    assert paths(doc) == ["$.identification.category", "$.materials.composition[1].recycled",
                          "$.metadata.economicOperatorId"]


def test_draft_04_boolean_exclusive_maximum_accepts_the_bound():
    doc = example()
    doc["materials"]["composition"][0]["recycled"] = 100
    assert validate_document(doc) == []


def test_invalid_unknown_property_refused_at_any_depth():
    doc = example()
    doc["ownerName"] = "Jane Doe"
    doc["performance"]["dynamic"]["stateOfCharge"]["gps"] = "52.1,4.3"
    doc["materials"]["composition"][0]["id"][0]["extra"] = 1
    assert paths(doc) == ["$.materials.composition[0].id[0].extra", "$.ownerName",
                          "$.performance.dynamic.stateOfCharge.gps"]


@pytest.mark.parametrize("value", ["2026-13-01", "2026-02-30", "2026-2-01", "20260201", "2026-02-01 "])
def test_invalid_loose_dates_refused(value):
    doc = example()
    doc["metadata"]["issueDate"] = value
    assert paths(doc) == ["$.metadata.issueDate"]


@pytest.mark.parametrize("value", ["2026-11-20T08:15:00Z trailing", "2026-11-31T08:15:00Z", "2026-11-20T25:00:00",
                                   "2026-11-20T24:00:00Z", "12026-11-20T08:15:00Z", "2026-11-20"])
def test_invalid_loose_timestamps_refused(value):
    doc = example()
    doc["performance"]["dynamic"]["stateOfCharge"]["time"] = value
    assert paths(doc) == ["$.performance.dynamic.stateOfCharge.time"]


@pytest.mark.parametrize("value", ["2026-11-20T08:15:00Z", "2026-11-20T08:15:00.250+01:00", "2026-11-20T08:15:00"])
def test_iso_timestamps_accepted(value):
    doc = example()
    doc["performance"]["dynamic"]["stateOfCharge"]["time"] = value
    assert paths(doc) == []


@pytest.mark.parametrize("field", ["passportIdentifier", "predecessor"])
@pytest.mark.parametrize("value", ["3f2b8c1e-9d4a-1c6b-8e2f-5a7d1c3b9e04",   # version 1
                                   "3f2b8c1e-9d4a-4c6b-0e2f-5a7d1c3b9e04",   # NCS variant
                                   "not-a-uuid"])
def test_invalid_passport_ids_not_uuid4(field, value):
    doc = example()
    doc["metadata"][field] = value
    assert f"$.metadata.{field}" in paths(doc)


def test_urn_uuid4_accepted():
    doc = example()
    doc["metadata"]["passportIdentifier"] = "urn:uuid:" + doc["metadata"]["passportIdentifier"]
    assert paths(doc) == []


def test_invalid_wrong_types_and_non_object():
    doc = example()
    doc["characteristics"]["warranty"]["lifeValue"] = "eight"
    doc["materials"]["active"]["nickel"]["critical"] = "yes"
    assert paths(doc) == ["$.characteristics.warranty.lifeValue", "$.materials.active.nickel.critical"]
    assert paths([]) == ["$"]


def test_invalid_too_deep_refused_before_validation():
    doc = example()
    nested = {}
    for _ in range(MAX_DOCUMENT_DEPTH + 5):
        nested = {"x": nested}
    doc["sources"] = [nested]
    issues = validate_document(doc)
    assert [issue.path for issue in issues] == ["$"] and "deep" in issues[0].message


def test_load_document_refusals():
    doc = example()
    assert load_document(json.dumps(doc).encode()) == doc
    for raw, expected in [(b"\xff", "UTF-8"), (b"[1]", "object"), (b'{"a": NaN}', "NaN"),
                          (b'{"a": 1, "a": 2}', "duplicate"), (b"{", "not JSON"),
                          (b" " * (MAX_DOCUMENT_BYTES + 1), "bytes")]:
        with pytest.raises(PassportInvalid) as caught:
            load_document(raw)
        assert expected in str(caught.value), raw[:20]


def test_every_schema_leaf_has_a_spec():
    assert len(leaf_paths()) > 250 and field_specs()["$"].json_type == "object"


def test_nil_predecessor_means_none_but_not_as_passport_id():
    from cityledger.offchain.passport.validate import get_predecessor
    doc = example()
    assert get_predecessor(doc) == doc["metadata"]["predecessor"]
    doc["metadata"]["predecessor"] = "urn:uuid:00000000-0000-0000-0000-000000000000"
    assert paths(doc) == [] and get_predecessor(doc) is None
    doc["metadata"]["passportIdentifier"] = "00000000-0000-0000-0000-000000000000"
    assert paths(doc) == ["$.metadata.passportIdentifier"]


def test_tractus_x_style_values_accepted():
    doc = example()
    doc["metadata"]["passportIdentifier"] = "urn:uuid:550e8400-e29b-41d4-a716-446655440000"
    doc["performance"]["dynamic"]["fullCycles"]["time"] = "2023-12-07T10:39:13.576+01:00"
    doc["identification"]["identification"]["codes"][0] = {"key": "TARIC", "value": "8703 24 10 00"}
    assert paths(doc) == []


@pytest.mark.parametrize("key", ["composition[0]", "active.nickel", "composition[]"])
def test_invalid_keys_shaped_like_paths_are_unknown(key):
    from cityledger.offchain.passport.tiers import split
    from cityledger.offchain.passport.types import PassportError
    doc = example()
    doc["materials"][key] = doc["materials"]["composition"][0] if "[" in key else {"recycled": 1}
    assert paths(doc) == [f"$.materials.{key}"]
    with pytest.raises(PassportError):
        split(doc)
