"""Reading anchored AnonCreds objects from the ledger as the anoncreds library's JSON."""

from __future__ import annotations

from typing import Any

from ...core.state import StateReader
from ...modules.identity.anchors import (
    compute_cred_def_json,
    compute_rev_reg_def_json,
    compute_schema_json,
    compute_status_list_json,
    get_cred_def,
    get_rev_reg_def,
    get_schema,
    get_status_list,
)


def get_schema_json(state: StateReader, schema_id: str) -> dict[str, Any]:
    """An anchored schema; raise LookupError."""
    record = get_schema(state, schema_id)
    if record is None:
        raise LookupError(f"schema {schema_id!r} is not anchored")
    return compute_schema_json(record)


def get_cred_def_json(state: StateReader, cred_def_id: str) -> dict[str, Any]:
    """An anchored credential definition; raise LookupError."""
    record = get_cred_def(state, cred_def_id)
    if record is None:
        raise LookupError(f"credential definition {cred_def_id!r} is not anchored")
    return compute_cred_def_json(record)


def get_rev_reg_def_json(state: StateReader, rev_reg_id: str) -> dict[str, Any]:
    """An anchored revocation registry definition; raise LookupError."""
    record = get_rev_reg_def(state, rev_reg_id)
    if record is None:
        raise LookupError(f"revocation registry {rev_reg_id!r} is not anchored")
    return compute_rev_reg_def_json(record)


def get_status_list_json(state: StateReader, rev_reg_id: str) -> dict[str, Any]:
    """The latest status list of a registry in this state; raise LookupError."""
    record = get_rev_reg_def(state, rev_reg_id)
    status = None if record is None else get_status_list(state, rev_reg_id)
    if status is None:
        raise LookupError(f"revocation registry {rev_reg_id!r} has no status list")
    return compute_status_list_json(record, status)
