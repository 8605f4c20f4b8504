"""Validation of a Tractus-X BatteryPass 6.1.0 document: the schema, then what the schema leaves loose.

The schema declares draft-04, so the validator class comes from its `$schema`: a newer draft reads
draft-04's boolean `exclusiveMaximum` as a number and refuses valid documents. The schema allows
unknown properties and takes a date such as 2024-13-45 or a timestamp with trailing text; those
are refused here, as is a passport identifier (or predecessor) that is not a UUID version 4.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from jsonschema import validators

from .schema import child_path, field_specs, is_property, load_schema, resolve, template_of
from .types import (MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, MAX_REPORTED_ISSUES, PassportInvalid,
                    SchemaIssue)

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
# ISO 8601 extended format with seconds, optional fraction and optional zone, four-digit year:
# the schema's Timestamp pattern is not anchored, so its own match proves nothing.
TIMESTAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
MISSING = "required field missing"
# The schema requires a predecessor; Tractus-X fills it with the nil UUID when there is none.
PREDECESSOR_PATH = "$.metadata.predecessor"
PREDECESSOR_REF = "predecessor"
UUID_RE = re.compile(r"(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@functools.cache
def _validator() -> Any:
    """The schema's own draft validator, with a format checker, for the shipped schema."""
    schema = load_schema()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    # The same rules with every $ref replaced by its target (the schema has no recursion): the
    # validator then skips reference lookups, which took more than half of its time.
    return cls(_inline_refs(schema, schema), format_checker=cls.FORMAT_CHECKER)


def _inline_refs(schema: dict[str, Any], node: Any) -> Any:
    """`node` with each {"$ref": ...} replaced by a copy of its target, and the components dropped."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(schema, resolve(schema, node)[0])
        return {key: _inline_refs(schema, value) for key, value in node.items() if key != "components"}
    if isinstance(node, list):
        return [_inline_refs(schema, item) for item in node]
    return node


def format_path(parts: Iterable[str | int]) -> str:
    """A JSON path such as $.materials.composition[0].unit from a jsonschema path."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_document(document: Any, excused: Callable[[str], bool] | None = None) -> list[SchemaIssue]:
    """Every issue of `document`, sorted by path; a missing required field is skipped if `excused(path)`."""
    depth = _depth(document)
    if depth > MAX_DOCUMENT_DEPTH:
        return [SchemaIssue("$", f"nested {depth} deep, at most {MAX_DOCUMENT_DEPTH} allowed")]
    issues: set[SchemaIssue] = set()
    for error in _validator().iter_errors(document):
        if error.validator == "required":
            continue  # Reported below, one per missing field and at the field's own path.
        issues.add(SchemaIssue(format_path(error.absolute_path), error.message))
    _strict(document, "$", issues)
    excused = excused or (lambda path: False)
    return sorted(issue for issue in issues if not (issue.message == MISSING
                                                    and excused(template_of(issue.path))))


def check_document(document: Any, excused: Callable[[str], bool] | None = None) -> None:
    """Raise PassportInvalid naming every issue (up to MAX_REPORTED_ISSUES) unless `document` is valid."""
    issues = validate_document(document, excused)
    if issues:
        raise PassportInvalid(issues[:MAX_REPORTED_ISSUES], max(0, len(issues) - MAX_REPORTED_ISSUES))


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in `value`, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DOCUMENT_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _strict(value: Any, path: str, issues: set[SchemaIssue]) -> None:
    """Add the issues the schema lets through: unknown properties, missing fields, loose dates, ids."""
    spec = field_specs().get(template_of(path))
    if spec is None:
        return
    if path == PREDECESSOR_PATH and isinstance(value, str):
        problem = _loose_value(PREDECESSOR_REF, value)
        if problem:
            issues.add(SchemaIssue(path, problem))
        return
    if isinstance(value, dict) and spec.json_type == "object":
        _strict_object(value, path, issues)
    elif isinstance(value, list) and spec.json_type == "array" and not spec.is_leaf:
        for index, item in enumerate(value):
            _strict(item, f"{path}[{index}]", issues)
    elif isinstance(value, str):
        problem = _loose_value(spec.ref, value)
        if problem:
            issues.add(SchemaIssue(path, problem))


def _strict_object(value: dict, path: str, issues: set[SchemaIssue]) -> None:
    """Refuse unknown keys, name each missing required key, and check the known ones."""
    template = template_of(path)
    for key in _required(template):
        if key not in value:
            issues.add(SchemaIssue(child_path(path, key), MISSING))
    for key, child in value.items():
        if not is_property(template, key):
            issues.add(SchemaIssue(child_path(path, key), "unknown property, not in BatteryPass 6.1.0"))
        else:
            _strict(child, child_path(path, key), issues)


@functools.cache
def _required(template: str) -> tuple[str, ...]:
    """The required keys of the object at `template`."""
    schema = node = load_schema()
    for step in _steps(template):
        node, _ = resolve(schema, node)
        node = node["items"] if step == "[]" else node["properties"][step]
    node, _ = resolve(schema, node)
    return tuple(node.get("required", ()))


def _steps(template: str) -> list[str]:
    """The keys and [] of a template path, after the leading $."""
    steps: list[str] = []
    for part in template[1:].split("."):
        if not part:
            continue
        name = part.replace("[]", "")
        if name:
            steps.append(name)
        steps.extend(["[]"] * part.count("[]"))
    return steps


def _loose_value(ref: str, value: str) -> str:
    """Why `value` of characteristic `ref` is refused, or "" when it is fine."""
    if ref == "DateTrait":
        return "" if _is_date(value) else "expected a calendar date YYYY-MM-DD (ISO 8601)"
    if ref == "Timestamp":
        return "" if _is_timestamp(value) else "expected an ISO 8601 date-time YYYY-MM-DDThh:mm:ss[.f][Z|±hh:mm]"
    if ref == "UuidV4Trait":
        return "" if _is_uuid4(value) else "expected a UUID version 4 (RFC 4122 variant)"
    if ref == PREDECESSOR_REF:
        ok = _is_uuid4(value) or (UUID_RE.fullmatch(value) and uuid.UUID(value[-36:]) == uuid.UUID(int=0))
        return "" if ok else "expected a UUID version 4, or the nil UUID for no predecessor"
    return ""


def _is_date(value: str) -> bool:
    """A real calendar date in YYYY-MM-DD form."""
    if not DATE_RE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: str) -> bool:
    """A real date and time in ISO 8601 extended form."""
    if not TIMESTAMP_RE.fullmatch(value):
        return False
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_uuid4(value: str) -> bool:
    """A UUID (bare or urn:uuid:) of version 4 and the RFC 4122 variant."""
    if not UUID_RE.fullmatch(value):
        return False
    parsed = uuid.UUID(value.removeprefix("urn:uuid:"))
    return parsed.version == 4 and parsed.variant == uuid.RFC_4122


def load_document(raw: bytes) -> dict[str, Any]:
    """A document from JSON bytes: at most MAX_DOCUMENT_BYTES, UTF-8, no NaN, no duplicate key, an object."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise PassportInvalid([SchemaIssue("$", f"{len(raw)} bytes, at most {MAX_DOCUMENT_BYTES} allowed")])
    try:
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise PassportInvalid([SchemaIssue("$", "not valid UTF-8")]) from None
    except ValueError as error:
        raise PassportInvalid([SchemaIssue("$", f"not JSON: {error}")]) from None
    if not isinstance(document, dict):
        raise PassportInvalid([SchemaIssue("$", "expected a JSON object")])
    return document


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object from its pairs; a key given twice is refused (which one counts would be a guess)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON number")


def get_predecessor(document: dict[str, Any]) -> str | None:
    """The passport a valid document succeeds (lower-case bare UUID), or None for the nil UUID."""
    parsed = uuid.UUID(document["metadata"]["predecessor"].removeprefix("urn:uuid:"))
    return None if parsed.int == 0 else str(parsed)
