"""Identity state transitions: DIDs, issuer accreditation, anchored AnonCreds objects.

Who may act for a DID: exactly its current controller, i.e. a transaction whose signer equals the
DID's controller (so `threshold` of its keys signed it). Rotating the controller therefore takes
the power to act away from the old keys at once.
"""

from __future__ import annotations

import msgspec

from ...core.encoding import decoder, encode
from ...core.keys import Signer
from ...core.state import Overlay, StateReader
from ..base import Context
from .did import compute_did, is_did, method_specific_id
from .errors import (
    ERR_ACCREDITATION,
    ERR_DEACTIVATED,
    ERR_DID_EXISTS,
    ERR_INVALID_DID,
    ERR_INVALID_DOCUMENT,
    ERR_NOT_ACCREDITED,
    ERR_UNAUTHORIZED,
    ERR_UNKNOWN_DID,
    ERR_VERSION_MISMATCH,
    ERR_WRONG_KIND,
)
from .keys import accreditation_key, did_key
from .messages import (
    KIND_DEVICE,
    KIND_NAMES,
    KIND_ORGANISATION,
    MAX_SALT_BYTES,
    Accreditation,
    AccreditIssuer,
    CreateDid,
    DeactivateDid,
    DidRecord,
    Service,
    UpdateDid,
    VerificationKey,
    WithdrawAccreditation,
)
from .validation import check_controller, check_keys, check_services, is_credential_type

_DID = decoder(DidRecord)
_ACCREDITATION = decoder(Accreditation)


# -- reads -------------------------------------------------------------------------------------

def get_did(state: StateReader, did: str) -> DidRecord | None:
    """A DID's record, or None if it was never created (or is not a did:city DID)."""
    if not is_did(did):
        return None
    raw = state.get(did_key(method_specific_id(did)))
    return None if raw is None else _DID.decode_lenient(raw)


def is_active(record: DidRecord | None) -> bool:
    """True if the DID exists and is not deactivated."""
    return record is not None and not record.deactivated


def get_accreditation(state: StateReader, did: str, credential_type: str) -> Accreditation | None:
    """An issuer's accreditation for a credential type, or None (also for a malformed DID or type)."""
    if not is_did(did) or not is_credential_type(credential_type):
        return None
    raw = state.get(accreditation_key(did, credential_type))
    return None if raw is None else _ACCREDITATION.decode_lenient(raw)


def is_accredited(state: StateReader, did: str, credential_type: str) -> bool:
    """True if `did` is an active organisation accredited to issue `credential_type`."""
    record = get_did(state, did)
    if not is_active(record) or record.kind != KIND_ORGANISATION:
        return False
    return get_accreditation(state, did, credential_type) is not None


def keys_for(record: DidRecord, purpose: str) -> list:
    """The public keys a DID lists for one verification purpose (none once deactivated)."""
    if record.deactivated:
        return []
    return [vk.key for vk in record.keys if purpose in vk.purposes]


# -- mutators ----------------------------------------------------------------------------------

def put_did(state: Overlay, record: DidRecord) -> None:
    """Write a DID record."""
    state.set(did_key(method_specific_id(record.did)), encode(record))


def create_did_record(ctx: Context, kind: int, controller: Signer, salt: bytes, keys: list[VerificationKey],
                      services: list[Service]) -> DidRecord:
    """Validate and write a new DID; used by create_did and by the devices module."""
    # Check: the document is well formed.
    for problem in (check_controller(controller), check_keys(keys), check_services(services)):
        if problem:
            raise ERR_INVALID_DOCUMENT(problem, problem.split(":")[0])
    if len(salt) > MAX_SALT_BYTES:
        raise ERR_INVALID_DOCUMENT(f"salt: expected at most {MAX_SALT_BYTES} bytes, got {len(salt)}", "salt")
    did = compute_did(controller, salt)
    # Check: the identifier is new.
    if get_did(ctx.state, did) is not None:
        raise ERR_DID_EXISTS(f"did: {did} already exists (choose another salt)", "salt")
    record = DidRecord(did, kind, controller, list(keys), list(services), 1, ctx.height, ctx.height, False)
    put_did(ctx.state, record)
    ctx.emit("did_created", did=did, did_kind=KIND_NAMES[kind])
    return record


def require_controller(ctx: Context, did: str, field: str = "did") -> DidRecord:
    """The DID's record if the sender is its current controller; raise otherwise."""
    if not is_did(did):
        raise ERR_INVALID_DID(f"{field}: expected a did:city DID, got {did!r}", field)
    record = get_did(ctx.state, did)
    if record is None:
        raise ERR_UNKNOWN_DID(f"{field}: no DID {did}", field)
    if record.deactivated:
        raise ERR_DEACTIVATED(f"{field}: {did} is deactivated", field)
    if ctx.signer != record.controller:
        raise ERR_UNAUTHORIZED(f"{field}: the transaction's signer is not the current controller of {did}", field)
    return record


def require_organisation(ctx: Context, did: str, field: str = "issuer") -> DidRecord:
    """Like require_controller, and the DID must be an organisation's."""
    record = require_controller(ctx, did, field)
    if record.kind != KIND_ORGANISATION:
        raise ERR_WRONG_KIND(f"{field}: {did} is a {KIND_NAMES[record.kind]} DID, expected an organisation", field)
    return record


# -- DID operations ----------------------------------------------------------------------------

def process_create_did(ctx: Context, msg: CreateDid) -> None:
    """Create an organisation DID controlled by the transaction's signer."""
    # Check: the sender proves control of the new DID's controller keys by signing with them.
    if ctx.signer != msg.controller:
        raise ERR_UNAUTHORIZED("controller: the transaction must be signed by the new DID's controller", "controller")
    create_did_record(ctx, KIND_ORGANISATION, msg.controller, msg.salt, msg.keys, msg.services)


def process_update_did(ctx: Context, msg: UpdateDid) -> None:
    """Replace controller, keys and services; the old controller loses its power at once."""
    # Check: the current controller signs, against the version it saw.
    record = require_controller(ctx, msg.did)
    if msg.version != record.version:
        raise ERR_VERSION_MISMATCH(f"version: {msg.did} is at version {record.version}, got {msg.version}",
                                   "version")
    # Check: the new document is well formed.
    for problem in (check_controller(msg.controller), check_keys(msg.keys), check_services(msg.services)):
        if problem:
            raise ERR_INVALID_DOCUMENT(problem, problem.split(":")[0])
    rotated = msg.controller != record.controller
    put_did(ctx.state, msgspec.structs.replace(
        record, controller=msg.controller, keys=list(msg.keys), services=list(msg.services),
        version=record.version + 1, updated_height=ctx.height))
    ctx.emit("did_updated", did=msg.did, version=record.version + 1, controller_rotated=rotated)


def process_deactivate_did(ctx: Context, msg: DeactivateDid) -> None:
    """Deactivate an organisation DID; devices are deactivated by decommissioning them."""
    # Check: the controller signs, and the DID is an organisation's.
    record = require_controller(ctx, msg.did)
    if record.kind == KIND_DEVICE:
        raise ERR_WRONG_KIND(f"did: {msg.did} is a device DID; decommission the device instead", "did")
    deactivate(ctx, record)


def deactivate(ctx: Context, record: DidRecord) -> None:
    """Mark a DID deactivated for good."""
    put_did(ctx.state, msgspec.structs.replace(record, deactivated=True, version=record.version + 1,
                                               updated_height=ctx.height))
    ctx.emit("did_deactivated", did=record.did)


# -- governance actions: the trusted-issuer registry ---------------------------------------------

def _check_accreditation(ctx: Context, did: str, credential_type: str) -> None:
    if not is_credential_type(credential_type):
        raise ERR_ACCREDITATION(f"credential_type: expected lower-case words joined by '-', got "
                                f"{credential_type!r}", "credential_type")
    record = get_did(ctx.state, did)
    if record is None:
        raise ERR_UNKNOWN_DID(f"did: no DID {did!r}", "did")
    if record.deactivated:
        raise ERR_DEACTIVATED(f"did: {did} is deactivated", "did")
    if record.kind != KIND_ORGANISATION:
        raise ERR_WRONG_KIND(f"did: {did} is not an organisation DID", "did")


def execute_accredit_issuer(ctx: Context, action: AccreditIssuer) -> None:
    """Accredit an organisation to issue one credential type (run after a consortium vote)."""
    _check_accreditation(ctx, action.did, action.credential_type)
    if get_accreditation(ctx.state, action.did, action.credential_type) is not None:
        raise ERR_ACCREDITATION(f"did: {action.did} is already accredited for {action.credential_type}", "did")
    ctx.state.set(accreditation_key(action.did, action.credential_type),
                  encode(Accreditation(action.did, action.credential_type, ctx.height)))
    ctx.emit("issuer_accredited", did=action.did, credential_type=action.credential_type)


def execute_withdraw_accreditation(ctx: Context, action: WithdrawAccreditation) -> None:
    """Withdraw an accreditation: the issuer's credentials of that type stop verifying."""
    if get_accreditation(ctx.state, action.did, action.credential_type) is None:
        raise ERR_NOT_ACCREDITED(f"did: {action.did} is not accredited for {action.credential_type!r}", "did")
    ctx.state.delete(accreditation_key(action.did, action.credential_type))
    ctx.emit("accreditation_withdrawn", did=action.did, credential_type=action.credential_type)


ACTIONS = {AccreditIssuer: execute_accredit_issuer, WithdrawAccreditation: execute_withdraw_accreditation}
