"""The compiled validation path (jsonschema_rs) answers exactly what the reference validator answers."""

import copy

import pytest

from passport_example import example, leaves

from cityledger.offchain.passport import validate
from cityledger.offchain.passport.tiers import is_withheld, split
from cityledger.offchain.passport.validate import reference_issues, validate_document

# One of these replaces each leaf in turn (leaf i gets mutation i mod n of its kind).
STRING_MUTATIONS = (7, None, "{}\n", "\u0662{}", "{}\u0301", ["{}"], "", "x" * 101)
NUMBER_MUTATIONS = (-1, 100.5, 2**70, -(2**70), "1", True, None, 1e308, 0, 100)
OTHER_MUTATIONS = (1, "true", None, {})


def _mutate(value, index):
    """A broken (or borderline) replacement for one leaf value."""
    if isinstance(value, str):
        chosen = STRING_MUTATIONS[index % len(STRING_MUTATIONS)]
        if isinstance(chosen, str):
            return chosen.format(value) if "{}" in chosen else chosen
        return [value] if isinstance(chosen, list) else chosen
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return NUMBER_MUTATIONS[index % len(NUMBER_MUTATIONS)]
    return OTHER_MUTATIONS[index % len(OTHER_MUTATIONS)]


def _set(document, path, value):
    """Set the leaf at concrete `path` ($.a.b[2].c) in `document`."""
    steps = path[2:].replace("[", ".[").split(".")
    node = document
    for step in steps[:-1]:
        node = node[int(step[1:-1])] if step.startswith("[") else node[step]
    last = steps[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value


def _broken_documents():
    """The example with each leaf broken in turn, plus hand-picked edge cases of the compiled path."""
    base = example()
    for index, (path, value) in enumerate(leaves(base)):
        doc = copy.deepcopy(base)
        _set(doc, path, _mutate(value, index))
        yield path, doc
    doc = example()
    doc["identification"]["idDmc"] = "urn:uuid:" + "٣" * 8
    yield "unicode digits", doc
    doc = example()
    doc["metadata"]["economicOperatorId"] += "\n"  # Python's $ matches before a final newline
    yield "trailing newline", doc
    doc = example()
    doc["materials"]["composition"] = tuple(doc["materials"]["composition"])  # not an array to the reference
    yield "tuple", doc
    doc = example()
    doc["materials"]["composition"][0]["recycled"] = float("nan")
    yield "nan", doc
    doc = example()
    doc["identification"]["codes"] = doc["identification"]["codes"] * 2 if "codes" in doc["identification"] else []
    yield "repeated items", doc
    doc = example()
    del doc["metadata"]
    yield "missing section", doc


def test_fast_path_is_used_for_the_valid_example():
    doc = example()
    assert validate._compiled() is not None
    assert validate._fast_valid(doc)
    assert validate_document(doc) == reference_issues(doc) == []


def test_same_issues_as_the_reference_for_every_broken_leaf():
    answers = []
    for where, doc in _broken_documents():
        expected = reference_issues(doc)
        assert validate_document(doc) == expected, where
        answers.append(bool(expected))
    # Both answers occur (a free-text leaf takes most strings): the comparison is not between empty lists.
    assert answers.count(True) > 100 and answers.count(False) > 20


def test_compiled_rules_accept_only_what_the_reference_accepts():
    for where, doc in _broken_documents():
        if validate._scan(doc)[1] and validate._fast_valid(doc):
            errors = [e for e in validate._validator().iter_errors(doc) if e.validator != "required"]
            assert errors == [], where


@pytest.mark.parametrize("tier", ["public", "legitimate"])
def test_same_issues_for_tier_exports_with_withheld_fields(tier):
    parts = split(example())
    lower = {name: part for name, part in parts.items() if name in ("public", tier)}
    from cityledger.offchain.passport.tiers import merge
    doc = merge(lower)
    excused = lambda template: is_withheld(template, tier)  # noqa: E731 - as PassportStore.export excuses them
    assert validate_document(doc, excused) == reference_issues(doc, excused) == []
    doc["metadata"]["passportIdentifier"] = "not a uuid"
    assert validate_document(doc, excused) == reference_issues(doc, excused) != []
    assert validate_document(doc) == reference_issues(doc)  # nothing excused: every withheld field named


@pytest.mark.parametrize("keyword", ["anyOf", "not", "format"])
def test_schemas_the_compiled_path_cannot_match_are_left_to_the_reference(keyword):
    with pytest.raises(ValueError):
        validate._fast_schema({"type": "object", "properties": {"a": {keyword: "date-time"}}})


def test_narrowed_patterns_are_ascii_subsets():
    assert validate._ascii_pattern(r"^\d{4}-[\d-]$") == "^[0-9]{4}-[0-9-]$"
    assert validate._ascii_pattern(r"customKey:\w+") == "customKey:[A-Za-z0-9_]+"
    assert validate._ascii_pattern(r"a\.b") == r"a\.b"
    for unsafe in (r"\s+", r"(?i)abc", r"\bx", r"\p{L}"):
        with pytest.raises(ValueError):
            validate._ascii_pattern(unsafe)
