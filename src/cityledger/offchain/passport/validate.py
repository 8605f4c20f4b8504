"""Validation of a Tractus-X BatteryPass 6.1.0 document: the schema, then what the schema leaves loose.

The schema declares draft-04, so the validator class comes from its `$schema`: a newer draft reads
draft-04's boolean `exclusiveMaximum` as a number and refuses valid documents. The schema allows
unknown properties and takes a date such as 2024-13-45 or a timestamp with trailing text; those
are refused here, as is a passport identifier (or predecessor) that is not a UUID version 4.

The reference validator (jsonschema, pure Python) takes about 6 ms for a full document. A valid
document is answered by the same rules compiled with jsonschema_rs (tens of µs) and the checks
below; anything else goes through the reference validator, which gives the error list. The compiled
rules accept a subset of what the reference accepts (`_fast_schema`), so a verdict never differs.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema_rs
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
# Draft-04 keywords whose value maps names to subschemas, or is a subschema or a list of them.
SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions"})
SUBSCHEMA_VALUES = frozenset({"items", "additionalItems", "additionalProperties"})
# Where dropping `required` could widen or narrow a verdict, and formats (the two libraries check
# different sets, differently): a schema using any of these is not compiled, the reference answers.
COMBINATORS = frozenset({"allOf", "anyOf", "oneOf", "not", "dependencies", "format"})
# Python's \d and \w match non-ASCII digits and letters, the compiled engine's may match others:
# the compiled rules get the ASCII subsets. Escapes without a safe subset leave the schema uncompiled.
ASCII_CLASSES = {"\\d": ("[0-9]", "0-9"), "\\w": ("[A-Za-z0-9_]", "A-Za-z0-9_")}
UNSAFE_ESCAPE_RE = re.compile(r"\\[DWsSbBpPuUxX0-9]|\(\?")
JSON_SCALARS = (str, int, bool, type(None))


@functools.cache
def _validator() -> Any:
    """The schema's own draft validator, with a format checker, for the shipped schema."""
    schema = load_schema()
    cls = validators.validator_for(schema)
    cls.check_schema(schema)
    # The same rules with every $ref replaced by its target (the schema has no recursion): the
    # validator then skips reference lookups, which took more than half of its time.
    return cls(_inline_refs(schema, schema), format_checker=cls.FORMAT_CHECKER)


@functools.cache
def _compiled() -> Any:
    """The reference validator's rules compiled by jsonschema_rs (`_fast_schema`), or None if unsafe."""
    try:
        return jsonschema_rs.Draft4Validator(_fast_schema(_validator().schema))
    except ValueError:
        return None


def _fast_schema(node: Any) -> Any:
    """`node` without `required` (the strict checks name missing fields) and with ASCII-only patterns.

    Every document the result accepts, the reference accepts too (less its `required` errors, which
    validate_document skips): ASCII classes are subsets of Python's \\d and \\w, and the compiled
    `$` only matches at the end where Python's also matches before a final newline.
    """
    if not isinstance(node, dict):
        raise ValueError("a subschema is not an object")
    if COMBINATORS & node.keys():
        raise ValueError(f"the schema uses {sorted(COMBINATORS & node.keys())}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "required":
            continue
        if key == "pattern":
            out[key] = _ascii_pattern(value)
        elif key in SUBSCHEMA_MAPS:
            out[key] = {name: _fast_schema(child) for name, child in value.items()}
        elif key in SUBSCHEMA_VALUES and not isinstance(value, bool):
            out[key] = [_fast_schema(each) for each in value] if isinstance(value, list) else _fast_schema(value)
        else:
            out[key] = value
    return out


def _ascii_pattern(pattern: str) -> str:
    """`pattern` with \\d and \\w narrowed to ASCII; ValueError for an escape with no safe subset."""
    if UNSAFE_ESCAPE_RE.search(pattern):
        raise ValueError(f"pattern {pattern!r} has an escape the compiled path cannot narrow")
    out, in_class, index = [], False, 0
    while index < len(pattern):
        two = pattern[index:index + 2]
        if two in ASCII_CLASSES:
            out.append(ASCII_CLASSES[two][1 if in_class else 0])
            index += 2
            continue
        if two[:1] == "\\":
            out.append(two)
            index += 2
            continue
        in_class = (in_class or two[:1] == "[") and two[:1] != "]"
        out.append(pattern[index])
        index += 1
    return "".join(out)


def _fast_valid(document: Any) -> bool:
    """True if the compiled rules accept `document`; False when they refuse it or cannot read it."""
    compiled = _compiled()
    try:
        return compiled is not None and compiled.is_valid(document)
    except Exception:  # noqa: BLE001 - whatever the compiled path cannot decide, the reference decides
        return False


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
    depth, plain = _scan(document)
    if depth > MAX_DOCUMENT_DEPTH:
        return [SchemaIssue("$", f"nested {depth} deep, at most {MAX_DOCUMENT_DEPTH} allowed")]
    issues: set[SchemaIssue] = set()
    _strict(document, "$", issues)
    excused = excused or (lambda path: False)
    kept = sorted(issue for issue in issues if not (issue.message == MISSING and excused(template_of(issue.path))))
    if not kept and plain and _fast_valid(document):
        return []  # the compiled rules accept only what the reference accepts: it would find nothing either
    return reference_issues(document, excused)


def reference_issues(document: Any, excused: Callable[[str], bool] | None = None) -> list[SchemaIssue]:
    """validate_document by the reference validator alone (what it answers for any refused document)."""
    depth, _ = _scan(document)
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


def _scan(value: Any) -> tuple[int, bool]:
    """(how deep arrays and objects nest in `value`, whether it is plain JSON), without recursion.

    Plain: only dict (string keys), list, str, int, bool, None and finite float, exactly those
    types; the compiled path reads a tuple as an array where the reference refuses it.
    """
    deepest, plain, stack = 0, True, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DOCUMENT_DEPTH:
            break
        kind = type(node)
        if kind is dict:
            plain = plain and all(type(key) is str for key in node)
            stack.extend((child, depth + 1) for child in node.values())
        elif kind is list:
            stack.extend((child, depth + 1) for child in node)
        elif kind is float:
            plain = plain and math.isfinite(node)
        elif kind not in JSON_SCALARS:
            plain = False
    return deepest, plain


def _strict(value: Any, path: str, issues: set[SchemaIssue], template: str = "$") -> None:
    """Add the issues the schema lets through: unknown properties, missing fields, loose dates, ids.

    `template` is `path` with every [n] as [] (schema.template_of), carried down rather than recomputed.
    """
    spec = field_specs().get(template)
    if spec is None:
        return
    if template == PREDECESSOR_PATH and isinstance(value, str):
        problem = _loose_value(PREDECESSOR_REF, value)
        if problem:
            issues.add(SchemaIssue(path, problem))
        return
    if isinstance(value, dict) and spec.json_type == "object":
        _strict_object(value, path, template, issues)
    elif isinstance(value, list) and spec.json_type == "array" and not spec.is_leaf:
        for index, item in enumerate(value):
            _strict(item, f"{path}[{index}]", issues, template + "[]")
    elif isinstance(value, str):
        problem = _loose_value(spec.ref, value)
        if problem:
            issues.add(SchemaIssue(path, problem))


def _strict_object(value: dict, path: str, template: str, issues: set[SchemaIssue]) -> None:
    """Refuse unknown keys, name each missing required key, and check the known ones."""
    for key in _required(template):
        if key not in value:
            issues.add(SchemaIssue(child_path(path, key), MISSING))
    for key, child in value.items():
        if not is_property(template, key):
            issues.add(SchemaIssue(child_path(path, key), "unknown property, not in BatteryPass 6.1.0"))
        else:
            _strict(child, child_path(path, key), issues, child_path(template, key))


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
