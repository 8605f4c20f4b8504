"""Verifying an AnonCreds presentation against the ledger state.

The same function serves a verifier off the chain (reading state at the height its request pinned)
and a handler on the chain (reading the block's state), so both apply one trust policy:

- every schema, credential definition and revocation registry comes from the ledger;
- each credential's issuer is an active organisation DID accredited for the credential type (the
  schema's name) in that state;
- a credential from a revocable definition is proven against the registry's latest status list in
  that state, never an older one, so a revocation takes effect for the next presentation.

The anoncreds library then checks the proofs. Parsing anchored objects costs more than reading
them, so parsed objects are cached by the hash of their stored bytes (anchors are immutable).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import anoncreds

from ...core.encoding import decoder, parse_json
from ...core.hashing import sha256
from ...core.state import StateReader
from .anchors import (
    MAX_HEIGHT,
    compute_cred_def_json,
    compute_rev_reg_def_json,
    compute_schema_json,
    compute_status_list_json,
    get_latest_status_timestamp,
)
from .handlers import is_accredited
from .keys import cred_def_key, rev_reg_def_key, schema_key, status_list_key
from .messages import CredDefRecord, RevRegDefRecord, SchemaRecord, StatusListRecord

MAX_PRESENTATION_BYTES = 128 * 1024
MAX_IDENTIFIERS = 8
MAX_CACHED_OBJECTS = 512
_SCHEMA = decoder(SchemaRecord)
_CRED_DEF = decoder(CredDefRecord)
_REV_REG_DEF = decoder(RevRegDefRecord)
_STATUS_LIST = decoder(StatusListRecord)


class ResolutionError(Exception):
    """An object a presentation names is missing from the ledger or not trusted there."""


@dataclass
class Resolved:
    """The ledger objects one presentation needs, as anoncreds objects, plus their JSON."""

    schemas: dict[str, Any] = field(default_factory=dict)
    cred_defs: dict[str, Any] = field(default_factory=dict)
    rev_reg_defs: dict[str, Any] = field(default_factory=dict)
    status_lists: list[Any] = field(default_factory=list)
    credential_types: dict[str, str] = field(default_factory=dict)  # cred_def_id -> schema name


@dataclass(frozen=True)
class PresentationCheck:
    """The verdict on a presentation: verified or not, why, and the revealed values."""

    verified: bool
    reason: str = ""
    revealed: dict[str, Any] = field(default_factory=dict)


_CACHE: OrderedDict[bytes, Any] = OrderedDict()


def _cached(raw: bytes, build: Callable[[], Any]) -> Any:
    """The parsed object of stored bytes, built once per distinct content."""
    digest = sha256(raw)
    hit = _CACHE.get(digest)
    if hit is None:
        hit = build()
        _CACHE[digest] = hit
        if len(_CACHE) > MAX_CACHED_OBJECTS:
            _CACHE.popitem(last=False)
    return hit


def _schema(state: StateReader, schema_id: str) -> tuple[Any, str]:
    raw = state.get(schema_key(schema_id))
    if raw is None:
        raise ResolutionError(f"schema {schema_id!r} is not anchored")
    record = _SCHEMA.decode_lenient(raw)
    return _cached(raw, lambda: anoncreds.Schema.load(json.dumps(compute_schema_json(record)))), record.name


def _cred_def(state: StateReader, cred_def_id: str) -> tuple[Any, str, str]:
    raw = state.get(cred_def_key(cred_def_id))
    if raw is None:
        raise ResolutionError(f"credential definition {cred_def_id!r} is not anchored")
    record = _CRED_DEF.decode_lenient(raw)
    built = _cached(raw, lambda: anoncreds.CredentialDefinition.load(json.dumps(compute_cred_def_json(record))))
    return built, record.issuer, record.schema_id


def _registry(state: StateReader, rev_reg_id: str, timestamp: int) -> tuple[Any, Any]:
    raw = state.get(rev_reg_def_key(rev_reg_id))
    if raw is None:
        raise ResolutionError(f"revocation registry {rev_reg_id!r} is not anchored")
    record = _REV_REG_DEF.decode_lenient(raw)
    latest = get_latest_status_timestamp(state, rev_reg_id)
    if latest != timestamp:
        raise ResolutionError(f"revocation state of {rev_reg_id!r} at {timestamp} is not the latest "
                              f"status list ({latest}); refresh and present again")
    raw_status = state.get(status_list_key(rev_reg_id, latest))
    status = _STATUS_LIST.decode_lenient(raw_status)
    definition = _cached(raw, lambda: anoncreds.RevocationRegistryDefinition.load(
        json.dumps(compute_rev_reg_def_json(record))))
    status_list = _cached(raw + raw_status, lambda: anoncreds.RevocationStatusList.load(
        json.dumps(compute_status_list_json(record, status))))
    return definition, status_list


def resolve_identifiers(state: StateReader, identifiers: list[dict[str, Any]]) -> Resolved:
    """Resolve and trust-check what a presentation's identifiers name; raise ResolutionError."""
    if not 1 <= len(identifiers) <= MAX_IDENTIFIERS:
        raise ResolutionError(f"identifiers: expected 1 to {MAX_IDENTIFIERS}, got {len(identifiers)}")
    out = Resolved()
    for ident in identifiers:
        if not isinstance(ident, dict):
            raise ResolutionError("identifiers: expected objects")
        schema_id, cred_def_id = str(ident.get("schema_id")), str(ident.get("cred_def_id"))
        out.schemas[schema_id], credential_type = _schema(state, schema_id)
        out.cred_defs[cred_def_id], issuer, anchored_schema = _cred_def(state, cred_def_id)
        if anchored_schema != schema_id:
            raise ResolutionError(f"credential definition {cred_def_id!r} is not for schema {schema_id!r}")
        if not is_accredited(state, issuer, credential_type):
            raise ResolutionError(f"issuer {issuer} is not an active issuer accredited for {credential_type!r}")
        out.credential_types[cred_def_id] = credential_type
        rev_reg_id, timestamp = ident.get("rev_reg_id"), ident.get("timestamp")
        if rev_reg_id and timestamp is not None and rev_reg_id not in out.rev_reg_defs:
            if type(timestamp) is not int or not 0 <= timestamp <= MAX_HEIGHT:
                raise ResolutionError(f"identifiers: timestamp must be a height, 0 to {MAX_HEIGHT}")
            definition, status_list = _registry(state, str(rev_reg_id), timestamp)
            out.rev_reg_defs[str(rev_reg_id)] = definition
            out.status_lists.append(status_list)
    return out


def compute_revealed(presentation: dict[str, Any]) -> dict[str, Any]:
    """Revealed raw values by referent (a group referent maps to {name: value})."""
    proof = presentation.get("requested_proof", {})
    out: dict[str, Any] = {ref: item["raw"] for ref, item in proof.get("revealed_attrs", {}).items()}
    for ref, group in proof.get("revealed_attr_groups", {}).items():
        out[ref] = {name: item["raw"] for name, item in group.get("values", {}).items()}
    return out


def is_raw_consistent(presentation: dict[str, Any]) -> bool:
    """True if every revealed raw value encodes to the encoded value the proof covers.

    The proof signs the encoded values only; without this check a holder could show any raw text
    next to a correctly proven encoding.
    """
    proof = presentation.get("requested_proof", {})
    items = list(proof.get("revealed_attrs", {}).values())
    for group in proof.get("revealed_attr_groups", {}).values():
        items += list(group.get("values", {}).values())
    if not items:
        return True
    raws = {str(index): str(item["raw"]) for index, item in enumerate(items)}
    encoded = anoncreds.encode_credential_attributes(raws)
    return all(encoded[str(index)] == str(item["encoded"]) for index, item in enumerate(items))


def verify_presentation(state: StateReader, request: dict[str, Any], presentation: str | bytes) -> PresentationCheck:
    """Verify a presentation against `request` with every object resolved from `state`."""
    if len(presentation) > MAX_PRESENTATION_BYTES:
        return PresentationCheck(False, f"presentation: exceeds {MAX_PRESENTATION_BYTES} bytes")
    try:
        parsed = parse_json(presentation, "presentation")  # bounded nesting, no floats (1e400 is inf)
        identifiers = parsed["identifiers"]
        resolved = resolve_identifiers(state, identifiers)
    except ResolutionError as exc:
        return PresentationCheck(False, str(exc))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return PresentationCheck(False, f"presentation: malformed ({exc})")
    try:
        ok = anoncreds.Presentation.load(presentation).verify(
            json.dumps(request), resolved.schemas, resolved.cred_defs, resolved.rev_reg_defs or None,
            resolved.status_lists or None)
    except anoncreds.AnoncredsError as exc:
        return PresentationCheck(False, f"anoncreds: {exc}")
    if not ok:
        return PresentationCheck(False, "anoncreds: proof does not verify (revoked credential, unmet predicate "
                                        "or forged proof)")
    try:
        consistent = is_raw_consistent(parsed)
    except (ValueError, KeyError, TypeError, AttributeError, anoncreds.AnoncredsError) as exc:
        return PresentationCheck(False, f"presentation: malformed ({exc})")
    if not consistent:
        return PresentationCheck(False, "presentation: a revealed raw value does not match its proven encoding")
    return PresentationCheck(True, "", compute_revealed(parsed))
