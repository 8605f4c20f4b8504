"""Identity invariants: every stored DID is well formed and sits under its own identifier, and every
accreditation and anchored object hangs off an organisation DID and the objects it builds on."""

from __future__ import annotations

from ...core.encoding import decoder
from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from .anchors import (
    _CRED_DEF,
    _REV_REG_DEF,
    _SCHEMA,
    _STATUS_LIST,
    get_cred_def,
    get_rev_reg_def,
    get_schema,
    get_status_list,
)
from .did import is_did, method_specific_id
from .handlers import _ACCREDITATION, get_did
from .keys import (
    ACCREDITATIONS_PREFIX,
    CRED_DEFS_PREFIX,
    DIDS_PREFIX,
    REV_REG_DEFS_PREFIX,
    SCHEMAS_PREFIX,
    STATUS_LISTS_PREFIX,
    accreditation_key,
    did_key,
)
from .messages import KIND_NAMES, KIND_ORGANISATION, DidRecord
from .validation import check_controller, check_keys, check_services

_DID = decoder(DidRecord)


def check_dids(state: PrefixReader) -> None:
    """Raise InvariantBroken if a DID record is malformed or stored under another key, or an
    accreditation or anchored object refers to what is not there."""
    for key, raw in state.iter_prefix(DIDS_PREFIX):
        record = _DID.decode_lenient(raw)
        if not is_did(record.did) or did_key(method_specific_id(record.did)) != key:
            raise InvariantBroken(f"identity: DID record {record.did!r} stored under key {key.hex()}")
        if record.kind not in KIND_NAMES or record.version < 1:
            raise InvariantBroken(f"identity: {record.did} has kind {record.kind}, version {record.version}")
        problem = check_controller(record.controller) or check_keys(record.keys) or check_services(record.services)
        if problem:
            raise InvariantBroken(f"identity: {record.did}: {problem}")
    check_references(state)


def _require_organisation(state: PrefixReader, did: str, what: str) -> None:
    record = get_did(state, did)
    if record is None or record.kind != KIND_ORGANISATION:
        raise InvariantBroken(f"identity: {what} names {did!r}, which is not an organisation DID")


def check_references(state: PrefixReader) -> None:
    """Raise InvariantBroken on an accreditation or anchored object whose issuer or basis is missing,
    or a status list that undoes a revocation."""
    for key, raw in state.iter_prefix(ACCREDITATIONS_PREFIX):
        item = _ACCREDITATION.decode_lenient(raw)
        if accreditation_key(item.did, item.credential_type) != key:
            raise InvariantBroken(f"identity: accreditation of {item.did} stored under key {key.hex()}")
        _require_organisation(state, item.did, f"the accreditation for {item.credential_type!r}")
    for _, raw in state.iter_prefix(SCHEMAS_PREFIX):
        _require_organisation(state, _SCHEMA.decode_lenient(raw).issuer, "a schema")
    for _, raw in state.iter_prefix(CRED_DEFS_PREFIX):
        cred_def = _CRED_DEF.decode_lenient(raw)
        _require_organisation(state, cred_def.issuer, "a credential definition")
        if get_schema(state, cred_def.schema_id) is None:
            raise InvariantBroken(f"identity: a credential definition's schema {cred_def.schema_id!r} is missing")
    for _, raw in state.iter_prefix(REV_REG_DEFS_PREFIX):
        registry = _REV_REG_DEF.decode_lenient(raw)
        cred_def = get_cred_def(state, registry.cred_def_id)
        if cred_def is None or cred_def.issuer != registry.issuer:
            raise InvariantBroken(f"identity: registry of {registry.cred_def_id!r} lacks its issuer's cred def")
    for _, raw in state.iter_prefix(STATUS_LISTS_PREFIX):
        status = _STATUS_LIST.decode_lenient(raw)
        registry = get_rev_reg_def(state, status.rev_reg_def_id)
        if registry is None or len(status.revoked) != (registry.max_cred_num + 7) // 8:
            raise InvariantBroken(f"identity: status list of {status.rev_reg_def_id!r} does not fit its registry")
        latest = get_status_list(state, status.rev_reg_def_id)
        if latest is None or latest.timestamp < status.timestamp:
            raise InvariantBroken(f"identity: registry {status.rev_reg_def_id!r} has a list later than its latest")
        # A registry's revocations only grow: the latest list keeps every bit an older one set.
        if any(old & ~new for old, new in zip(status.revoked, latest.revoked)):
            raise InvariantBroken(f"identity: the latest list of {status.rev_reg_def_id!r} undoes a revocation")
