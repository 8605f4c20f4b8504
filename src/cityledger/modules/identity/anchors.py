"""Anchored AnonCreds objects: schemas, credential definitions, revocation registries, status lists.

Identifiers follow the did:indy AnonCreds layout under the issuer's DID:

    <issuer>/anoncreds/v0/SCHEMA/<name>/<version>
    <issuer>/anoncreds/v0/CLAIM_DEF/<hex(SHA-256(schema_id))[:16]>/<tag>
    <issuer>/anoncreds/v0/REV_REG_DEF/<hex(SHA-256(cred_def_id))[:16]>/<tag>

A status list's AnonCreds `timestamp` is the height of the block that anchored it, so the ledger,
not anybody's clock, says which revocation state was in force when.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anoncreds

from ...core.encoding import decoder, encode
from ...core.hashing import sha256
from ...core.state import StateReader
from ..base import Context
from .errors import (
    ERR_ALREADY_ANCHORED,
    ERR_INVALID_OBJECT,
    ERR_NOT_ACCREDITED,
    ERR_STATUS_LIST,
    ERR_UNAUTHORIZED,
    ERR_UNKNOWN_OBJECT,
)
from .handlers import get_accreditation, require_controller, require_organisation
from .keys import cred_def_key, rev_reg_def_key, schema_key, status_list_key, status_list_latest_key
from .messages import (
    MAX_ACCUMULATOR_LEN,
    MAX_CRED_DEF_VALUE_BYTES,
    MAX_CRED_NUM,
    MAX_REV_KEYS_BYTES,
    MAX_TAILS_LOCATION_LEN,
    AnchorCredDef,
    AnchorRevRegDef,
    AnchorSchema,
    CredDefRecord,
    RevRegDefRecord,
    SchemaRecord,
    StatusListRecord,
    UpdateStatusList,
)
from .validation import check_attr_names, check_endpoint, is_name, is_tails_hash, parse_canonical_json

_SCHEMA = decoder(SchemaRecord)
_CRED_DEF = decoder(CredDefRecord)
_REV_REG_DEF = decoder(RevRegDefRecord)
_STATUS_LIST = decoder(StatusListRecord)
# An accumulator is AnonCreds' text form of a curve point: hex words joined by single spaces. The
# library's parser tolerates surrounding whitespace, so without this one value had many encodings.
_ACCUMULATOR_RE = re.compile(r"[0-9A-Za-z]+(?: [0-9A-Za-z]+)*")
MAX_HEIGHT = 2**63 - 1  # heights are signed 64-bit in CometBFT; a status list's timestamp is one


# -- identifiers -------------------------------------------------------------------------------

def compute_schema_id(issuer: str, name: str, version: str) -> str:
    """The identifier of a schema."""
    return f"{issuer}/anoncreds/v0/SCHEMA/{name}/{version}"


def compute_cred_def_id(issuer: str, schema_id: str, tag: str) -> str:
    """The identifier of a credential definition."""
    return f"{issuer}/anoncreds/v0/CLAIM_DEF/{sha256(schema_id.encode()).hex()[:16]}/{tag}"


def compute_rev_reg_def_id(issuer: str, cred_def_id: str, tag: str) -> str:
    """The identifier of a revocation registry definition."""
    return f"{issuer}/anoncreds/v0/REV_REG_DEF/{sha256(cred_def_id.encode()).hex()[:16]}/{tag}"


# -- reads -------------------------------------------------------------------------------------

def get_schema(state: StateReader, schema_id: str) -> SchemaRecord | None:
    """An anchored schema, or None."""
    raw = state.get(schema_key(schema_id))
    return None if raw is None else _SCHEMA.decode_lenient(raw)


def get_cred_def(state: StateReader, cred_def_id: str) -> CredDefRecord | None:
    """An anchored credential definition, or None."""
    raw = state.get(cred_def_key(cred_def_id))
    return None if raw is None else _CRED_DEF.decode_lenient(raw)


def get_rev_reg_def(state: StateReader, rev_reg_def_id: str) -> RevRegDefRecord | None:
    """An anchored revocation registry definition, or None."""
    raw = state.get(rev_reg_def_key(rev_reg_def_id))
    return None if raw is None else _REV_REG_DEF.decode_lenient(raw)


def get_latest_status_timestamp(state: StateReader, rev_reg_def_id: str) -> int | None:
    """The timestamp (anchoring height) of a registry's latest status list, or None."""
    raw = state.get(status_list_latest_key(rev_reg_def_id))
    return None if raw is None else int.from_bytes(raw, "big")


def get_status_list(state: StateReader, rev_reg_def_id: str, timestamp: int | None = None) -> StatusListRecord | None:
    """A registry's status list at `timestamp`, or its latest one; None if there is none."""
    if timestamp is None:
        timestamp = get_latest_status_timestamp(state, rev_reg_def_id)
        if timestamp is None:
            return None
    if not 0 <= timestamp <= MAX_HEIGHT:
        return None
    raw = state.get(status_list_key(rev_reg_def_id, timestamp))
    return None if raw is None else _STATUS_LIST.decode_lenient(raw)


def is_revoked(status: StatusListRecord, index: int) -> bool:
    """True if credential `index` is revoked in a status list (False for an index outside it)."""
    if not 0 <= index < 8 * len(status.revoked):
        return False
    return bool(status.revoked[index // 8] >> (index % 8) & 1)


# -- AnonCreds JSON views ----------------------------------------------------------------------

def compute_schema_json(record: SchemaRecord) -> dict[str, Any]:
    """The AnonCreds schema object."""
    return {"issuerId": record.issuer, "name": record.name, "version": record.version,
            "attrNames": list(record.attr_names)}


def compute_cred_def_json(record: CredDefRecord) -> dict[str, Any]:
    """The AnonCreds credential definition object."""
    return {"issuerId": record.issuer, "schemaId": record.schema_id, "type": "CL", "tag": record.tag,
            "value": json.loads(record.value)}


def compute_rev_reg_def_json(record: RevRegDefRecord) -> dict[str, Any]:
    """The AnonCreds revocation registry definition object."""
    return {"issuerId": record.issuer, "revocDefType": "CL_ACCUM", "tag": record.tag,
            "credDefId": record.cred_def_id,
            "value": {"maxCredNum": record.max_cred_num, "publicKeys": json.loads(record.public_keys),
                      "tailsHash": record.tails_hash, "tailsLocation": record.tails_location}}


def compute_status_list_json(registry: RevRegDefRecord, status: StatusListRecord) -> dict[str, Any]:
    """The AnonCreds revocation status list object."""
    bits = [status.revoked[i // 8] >> (i % 8) & 1 for i in range(registry.max_cred_num)]
    return {"revRegDefId": status.rev_reg_def_id, "issuerId": registry.issuer, "revocationList": bits,
            "currentAccumulator": status.accumulator, "timestamp": status.timestamp}


def compute_revoked_bits(revocation_list: list[int]) -> bytes:
    """Pack an AnonCreds revocationList (0/1 per index) into the ledger's bit field."""
    out = bytearray((len(revocation_list) + 7) // 8)
    for index, bit in enumerate(revocation_list):
        if bit:
            out[index // 8] |= 1 << (index % 8)
    return bytes(out)


def _loads(kind: Any, value: dict[str, Any], field: str) -> None:
    """Check that the anoncreds library accepts an object (a pure parse, no randomness)."""
    try:
        kind.load(json.dumps(value))
    except anoncreds.AnoncredsError as exc:
        raise ERR_INVALID_OBJECT(f"{field}: not a valid AnonCreds object ({exc})", field) from None


# -- handlers ----------------------------------------------------------------------------------

def process_anchor_schema(ctx: Context, msg: AnchorSchema) -> None:
    """Anchor a schema under an organisation DID."""
    # Check: the issuer's controller signs, the fields are well formed, the id is new.
    require_organisation(ctx, msg.issuer)
    for field, value in (("name", msg.name), ("version", msg.version)):
        if not is_name(value):
            raise ERR_INVALID_OBJECT(f"{field}: expected [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}, got {value!r}", field)
    problem = check_attr_names(msg.attr_names)
    if problem:
        raise ERR_INVALID_OBJECT(problem, "attr_names")
    schema_id = compute_schema_id(msg.issuer, msg.name, msg.version)
    if get_schema(ctx.state, schema_id) is not None:
        raise ERR_ALREADY_ANCHORED(f"schema: {schema_id} is already anchored", "version")
    ctx.state.set(schema_key(schema_id), encode(SchemaRecord(msg.issuer, msg.name, msg.version,
                                                             list(msg.attr_names), ctx.height)))
    ctx.emit("schema_anchored", schema_id=schema_id)


def process_anchor_cred_def(ctx: Context, msg: AnchorCredDef) -> None:
    """Anchor a credential definition: only an issuer accredited for the schema's credential type."""
    # Check: controller signs; the schema exists; the issuer is accredited for its type.
    require_organisation(ctx, msg.issuer)
    schema = get_schema(ctx.state, msg.schema_id)
    if schema is None:
        raise ERR_UNKNOWN_OBJECT(f"schema_id: no anchored schema {msg.schema_id!r}", "schema_id")
    if get_accreditation(ctx.state, msg.issuer, schema.name) is None:
        raise ERR_NOT_ACCREDITED(f"issuer: {msg.issuer} is not accredited to issue {schema.name!r} credentials",
                                 "issuer")
    # Check: the tag and the public keys are well formed, and the id is new.
    if not is_name(msg.tag):
        raise ERR_INVALID_OBJECT(f"tag: expected [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}, got {msg.tag!r}", "tag")
    if len(msg.value) > MAX_CRED_DEF_VALUE_BYTES:
        raise ERR_INVALID_OBJECT(f"value: {len(msg.value)} bytes exceeds {MAX_CRED_DEF_VALUE_BYTES}", "value")
    value, problem = parse_canonical_json(msg.value, "value")
    if problem or not isinstance(value, dict) or not isinstance(value.get("primary"), dict):
        raise ERR_INVALID_OBJECT(problem or "value: expected a JSON object with a 'primary' key", "value")
    cred_def_id = compute_cred_def_id(msg.issuer, msg.schema_id, msg.tag)
    if get_cred_def(ctx.state, cred_def_id) is not None:
        raise ERR_ALREADY_ANCHORED(f"cred_def: {cred_def_id} is already anchored", "tag")
    record = CredDefRecord(msg.issuer, msg.schema_id, msg.tag, msg.value, ctx.height)
    _loads(anoncreds.CredentialDefinition, compute_cred_def_json(record), "value")
    ctx.state.set(cred_def_key(cred_def_id), encode(record))
    ctx.emit("cred_def_anchored", cred_def_id=cred_def_id, credential_type=schema.name)


def process_anchor_rev_reg_def(ctx: Context, msg: AnchorRevRegDef) -> None:
    """Anchor a revocation registry for one of the issuer's revocable credential definitions."""
    # Check: controller signs; the cred def is the issuer's own and supports revocation.
    require_organisation(ctx, msg.issuer)
    cred_def = get_cred_def(ctx.state, msg.cred_def_id)
    if cred_def is None:
        raise ERR_UNKNOWN_OBJECT(f"cred_def_id: no anchored credential definition {msg.cred_def_id!r}",
                                 "cred_def_id")
    if cred_def.issuer != msg.issuer:
        raise ERR_UNAUTHORIZED(f"cred_def_id: belongs to {cred_def.issuer}, not {msg.issuer}", "cred_def_id")
    if "revocation" not in json.loads(cred_def.value):
        raise ERR_INVALID_OBJECT(f"cred_def_id: {msg.cred_def_id} does not support revocation", "cred_def_id")
    _check_registry_fields(msg)
    rev_reg_def_id = compute_rev_reg_def_id(msg.issuer, msg.cred_def_id, msg.tag)
    if get_rev_reg_def(ctx.state, rev_reg_def_id) is not None:
        raise ERR_ALREADY_ANCHORED(f"rev_reg_def: {rev_reg_def_id} is already anchored", "tag")
    record = RevRegDefRecord(msg.issuer, msg.cred_def_id, msg.tag, msg.max_cred_num, msg.public_keys,
                             msg.tails_hash, msg.tails_location, ctx.height)
    _loads(anoncreds.RevocationRegistryDefinition, compute_rev_reg_def_json(record), "public_keys")
    ctx.state.set(rev_reg_def_key(rev_reg_def_id), encode(record))
    ctx.emit("rev_reg_def_anchored", rev_reg_def_id=rev_reg_def_id, tails_hash=msg.tails_hash)


def _check_registry_fields(msg: AnchorRevRegDef) -> None:
    if not is_name(msg.tag):
        raise ERR_INVALID_OBJECT(f"tag: expected [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}, got {msg.tag!r}", "tag")
    if not 1 <= msg.max_cred_num <= MAX_CRED_NUM:
        raise ERR_INVALID_OBJECT(f"max_cred_num: expected 1 to {MAX_CRED_NUM}, got {msg.max_cred_num}",
                                 "max_cred_num")
    if len(msg.public_keys) > MAX_REV_KEYS_BYTES:
        raise ERR_INVALID_OBJECT(f"public_keys: {len(msg.public_keys)} bytes exceeds {MAX_REV_KEYS_BYTES}",
                                 "public_keys")
    value, problem = parse_canonical_json(msg.public_keys, "public_keys")
    if problem or not isinstance(value, dict) or "accumKey" not in value:
        raise ERR_INVALID_OBJECT(problem or "public_keys: expected a JSON object with 'accumKey'", "public_keys")
    if not is_tails_hash(msg.tails_hash):
        raise ERR_INVALID_OBJECT(f"tails_hash: expected base58 SHA-256, got {msg.tails_hash!r}", "tails_hash")
    if len(msg.tails_location) > MAX_TAILS_LOCATION_LEN or not check_endpoint(msg.tails_location):
        raise ERR_INVALID_OBJECT(f"tails_location: expected an http(s) URL, got {msg.tails_location!r}",
                                 "tails_location")


def process_update_status_list(ctx: Context, msg: UpdateStatusList) -> None:
    """Publish a status list; a revoked credential stays revoked, and the timestamp is the height."""
    # Check: the registry exists and its issuer's controller signs (revoking needs no accreditation).
    registry = get_rev_reg_def(ctx.state, msg.rev_reg_def_id)
    if registry is None:
        raise ERR_UNKNOWN_OBJECT(f"rev_reg_def_id: no anchored registry {msg.rev_reg_def_id!r}", "rev_reg_def_id")
    require_controller(ctx, registry.issuer, "rev_reg_def_id")
    # Check: the bit field covers the registry exactly, and no revocation is undone.
    size = (registry.max_cred_num + 7) // 8
    if len(msg.revoked) != size:
        raise ERR_STATUS_LIST(f"revoked: expected {size} bytes for {registry.max_cred_num} credentials, "
                              f"got {len(msg.revoked)}", "revoked")
    if registry.max_cred_num % 8 and msg.revoked[-1] >> (registry.max_cred_num % 8):
        raise ERR_STATUS_LIST("revoked: bits beyond max_cred_num must be zero", "revoked")
    previous = get_status_list(ctx.state, msg.rev_reg_def_id)
    if previous is not None:
        if previous.timestamp == ctx.height:
            raise ERR_STATUS_LIST(f"rev_reg_def_id: already updated at height {ctx.height}; retry in the next "
                                  "block", "rev_reg_def_id")
        undone = [i for i, (old, new) in enumerate(zip(previous.revoked, msg.revoked)) if old & ~new]
        if undone:
            raise ERR_STATUS_LIST(f"revoked: byte {undone[0]} clears a revoked credential; a revocation "
                                  "cannot be undone", "revoked")
    if len(msg.accumulator) > MAX_ACCUMULATOR_LEN or not _ACCUMULATOR_RE.fullmatch(msg.accumulator):
        raise ERR_STATUS_LIST(f"accumulator: expected 1 to {MAX_ACCUMULATOR_LEN} characters of alphanumeric "
                              "words joined by single spaces", "accumulator")
    status = StatusListRecord(msg.rev_reg_def_id, msg.revoked, msg.accumulator, ctx.height)
    _loads(anoncreds.RevocationStatusList, compute_status_list_json(registry, status), "accumulator")
    ctx.state.set(status_list_key(msg.rev_reg_def_id, ctx.height), encode(status))
    ctx.state.set(status_list_latest_key(msg.rev_reg_def_id), ctx.height.to_bytes(8, "big"))
    ctx.emit("status_list_updated", rev_reg_def_id=msg.rev_reg_def_id, timestamp=ctx.height)
