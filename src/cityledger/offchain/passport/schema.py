"""The Tractus-X BatteryPass 6.1.0 JSON Schema shipped with the package, and its field paths.

Paths are written as JSON paths: `$.materials.composition[].unit` is a template (any array item),
`$.materials.composition[2].unit` a concrete path into one document.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_FILE = "BatteryPass-schema.json"
SCHEMA_ASPECT_URN = "urn:samm:io.catenax.battery.battery_pass:6.1.0#BatteryPass"
REF_PREFIX = "#/components/schemas/"
INDEX_RE = re.compile(r"\[\d+\]")


@dataclass(frozen=True)
class FieldSpec:
    """One field of the schema: its template path, JSON type, named characteristic and whether it is a leaf."""

    path: str
    json_type: str
    ref: str
    is_leaf: bool


def load_schema(path: Path | str | None = None) -> dict[str, Any]:
    """The schema from `path`, or the copy shipped in this package when no path is configured."""
    if path is not None:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    return _shipped_schema()


@functools.cache
def _shipped_schema() -> dict[str, Any]:
    """The shipped schema, read once."""
    text = resources.files(__package__).joinpath("schema").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema = json.loads(text)
    if schema.get("x-samm-aspect-model-urn") != SCHEMA_ASPECT_URN:
        raise RuntimeError(f"shipped schema is not {SCHEMA_ASPECT_URN}")
    return schema


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the node a $ref points to, the characteristic's name) or (node, "") when it is inline."""
    ref = node.get("$ref")
    if ref is None:
        return node, ""
    if not ref.startswith(REF_PREFIX):
        raise RuntimeError(f"schema $ref {ref!r} is outside {REF_PREFIX}")
    name = ref[len(REF_PREFIX):]
    return schema["components"]["schemas"][name], name


def child_path(path: str, key: str) -> str:
    """The path of property `key` below `path`."""
    return f"{path}.{key}"


def is_property(template: str, key: str) -> bool:
    """Whether `key` is a property of the object at `template` (a key holding . or [ never is)."""
    return not any(mark in key for mark in ".[]") and child_path(template, key) in field_specs()


def template_of(path: str) -> str:
    """The template of a concrete path: every [n] becomes []."""
    return INDEX_RE.sub("[]", path)


@functools.cache
def field_specs() -> dict[str, FieldSpec]:
    """Every field of the shipped schema by template path, containers and leaves, in schema order."""
    schema = _shipped_schema()
    specs: dict[str, FieldSpec] = {}
    _collect(schema, schema, "$", "", specs)
    return specs


def _collect(schema: dict, node: dict, path: str, ref: str, specs: dict[str, FieldSpec]) -> None:
    """Add `node` at `path` and everything under it to `specs`."""
    node, name = resolve(schema, node)
    ref = name or ref
    json_type = node.get("type", "")
    if json_type == "object":
        specs[path] = FieldSpec(path, json_type, ref, False)
        for key, child in node.get("properties", {}).items():
            _collect(schema, child, child_path(path, key), "", specs)
    elif json_type == "array":
        items, item_ref = resolve(schema, node["items"])
        is_leaf = items.get("type") not in ("object", "array")
        specs[path] = FieldSpec(path, json_type, ref, is_leaf)
        if not is_leaf:
            _collect(schema, node["items"], path + "[]", "", specs)
    else:
        specs[path] = FieldSpec(path, json_type, ref, True)


def leaf_paths() -> list[str]:
    """The template paths of every leaf (a scalar, or an array of scalars) of the schema."""
    return [path for path, spec in field_specs().items() if spec.is_leaf]
