"""Annex XIII tiers: every schema field has one, split and merge are inverse, tier hashes are canonical."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from passport_example import example, leaves

from cityledger.offchain.passport.schema import field_specs, leaf_paths, template_of
from cityledger.offchain.passport.tiers import (TIER_TABLE, canonical_json, compute_tier_hash, is_withheld,
                                                 merge, split, tier_row, tiers_under)
from cityledger.offchain.passport.types import TIERS, PassportError


def test_every_schema_leaf_has_exactly_one_deciding_row_and_no_row_is_dead():
    assert [leaf for leaf in leaf_paths() if tier_row(leaf) is None] == []
    assert [row.path for row in TIER_TABLE if row.path not in field_specs()] == []
    assert len({row.path for row in TIER_TABLE}) == len(TIER_TABLE)


@pytest.mark.parametrize("path, tier", [
    ("$.identification.idDmc", "public"),
    ("$.materials.composition[].id[].name", "public"),
    ("$.materials.composition[].recycled", "public"),
    ("$.materials.composition[].concentration", "legitimate"),
    ("$.materials.composition[].location", "legitimate"),
    ("$.performance.rated.capacity.value", "public"),
    ("$.performance.rated.testReport[].content", "authority"),
    ("$.performance.dynamic.stateOfCharge.value", "legitimate"),
    ("$.operation.intoServiceDate", "legitimate"),
    ("$.operation.manufacturer.manufacturingDate", "public"),
    ("$.sustainability.status", "legitimate"),
    ("$.conformity.resultOfTestReport[].header", "authority"),
    ("$.safety.dismantling[].content", "legitimate"),
    ("$.handling.content.sparePart[].manufacturerPartId", "legitimate"),
    ("$.metadata.passportIdentifier", "public"),
])
def test_annex_xiii_tiers_of_named_fields(path, tier):
    assert tier_row(path).tier == tier


def test_composition_mixes_tiers():
    assert tiers_under("$.materials.composition") == ("public", "legitimate")
    assert tiers_under("$") == TIERS


def test_split_puts_each_leaf_in_its_tier_and_merge_restores():
    doc = example()
    parts = split(doc)
    for tier, part in parts.items():
        for path, value in leaves(part):
            if value == {}:
                continue  # A placeholder keeping the array indices of a mixed-tier array in line.
            assert tier_row(template_of(path)).tier == tier, path
    assert merge(parts) == doc
    assert "testReport" not in parts["public"]["performance"]["rated"]
    assert "dynamic" not in parts["public"]["performance"]
    assert parts["authority"]["conformity"]["resultOfTestReport"] == doc["conformity"]["resultOfTestReport"]
    # composition items: public keeps id/critical/recycled/renewable, legitimate the rest, same length.
    public_item = parts["public"]["materials"]["composition"][0]
    legit_item = parts["legitimate"]["materials"]["composition"][0]
    assert set(public_item) == {"id", "critical", "recycled", "renewable"}
    assert set(legit_item) == {"concentration", "unit", "location", "documentation"}


def test_withheld_required_fields():
    assert is_withheld("$.handling", "public") and not is_withheld("$.handling", "legitimate")
    assert is_withheld("$.conformity.resultOfTestReport", "legitimate")
    assert not is_withheld("$.materials.composition", "public")


def test_invalid_merge_of_clashing_parts():
    with pytest.raises(PassportError) as caught:
        merge({"public": {"a": {"b": 1}}, "legitimate": {"a": {"b": 2}}})
    assert caught.value.field == "$.a.b"
    with pytest.raises(PassportError):
        merge({"public": {"a": [{}]}, "legitimate": {"a": [{}, {}]}})


def test_invalid_split_of_a_field_outside_the_schema():
    with pytest.raises(PassportError) as caught:
        split({"ownerName": "x"})
    assert caught.value.field == "$.ownerName"


def test_tier_hash_is_sha256_of_canonical_json():
    import hashlib
    part = {"b": 1, "a": {"é": [1.5, True, None]}}
    assert canonical_json(part) == '{"a":{"é":[1.5,true,null]},"b":1}'.encode("utf-8")
    assert compute_tier_hash(part) == hashlib.sha256(canonical_json(part)).hexdigest()
    assert compute_tier_hash({"a": {"é": [1.5, True, None]}, "b": 1}) == compute_tier_hash(part)
    assert compute_tier_hash({"b": 2}) != compute_tier_hash({"b": 1})


def _optional_paths(value, path="$"):
    """Concrete paths of every dict entry and list item in `value` (candidates to drop or change)."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield f"{path}.{key}", (value, key)
            yield from _optional_paths(child, f"{path}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield f"{path}[{index}]", (value, index)
            yield from _optional_paths(child, f"{path}[{index}]")


SCALARS = st.one_of(st.text(max_size=8), st.integers(-10**6, 10**6), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32))


@st.composite
def documents(draw):
    """The example with random fields dropped, array items duplicated or emptied, and leaves changed."""
    doc = example()
    for _ in range(draw(st.integers(0, 12))):
        slots = list(_optional_paths(doc))
        if not slots:
            break
        _, (holder, key) = slots[draw(st.integers(0, len(slots) - 1))]
        action = draw(st.sampled_from(["drop", "empty", "duplicate", "scalar"]))
        if action == "drop":
            del holder[key]
        elif action == "empty":
            holder[key] = {} if isinstance(holder[key], dict) else [] if isinstance(holder[key], list) else holder[key]
        elif action == "duplicate" and isinstance(holder, list):
            holder.append(copy.deepcopy(holder[key]))
        elif not isinstance(holder[key], (dict, list)):
            holder[key] = draw(SCALARS)
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_split_merge_round_trip_on_random_documents(doc):
    parts = split(doc)
    assert set(parts) == set(TIERS)
    assert merge(parts) == doc
    assert merge(split(merge(parts))) == doc
    for tier, part in parts.items():
        for path, value in leaves(part):
            if value != {} and value != []:
                assert tiers_under(template_of(path))[0] == tier, (tier, path)


def test_docs_table_matches_the_code():
    from pathlib import Path
    doc = (Path(__file__).parents[1] / "docs" / "PASSPORT_TIERS.md").read_text(encoding="utf-8")
    rows = [line for line in doc.splitlines() if line.startswith("| `$")]
    assert rows == [f"| `{row.path}` | {row.tier} | {row.point} | {row.why} |" for row in TIER_TABLE]
