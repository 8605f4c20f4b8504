"""What every route file shares."""

from __future__ import annotations

from typing import Sequence

import msgspec
from fastapi import FastAPI

# Heights and other integer parameters are int64 in SQLite and CometBFT; past this they are a 400.
MAX_INT64 = 2**63 - 1


def add_schemas(app: FastAPI, types: Sequence[type]) -> None:
    """Add the JSON Schemas of these msgspec Structs to the app's OpenAPI document."""
    _, components = msgspec.json.schema_components(tuple(types), ref_template="#/components/schemas/{name}")
    generate = app.openapi

    def openapi() -> dict:
        fresh = app.openapi_schema is None
        schema = generate()
        if fresh:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
