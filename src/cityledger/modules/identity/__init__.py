"""identity: did:city DIDs for organisations and devices, the trusted-issuer registry, AnonCreds anchors.

Residents get no DID: they hold AnonCreds credentials and pseudonymous accounts (offchain/identity).
"""

from ...core.statekeys import PREFIX_IDENTITY
from ..base import Module
from .anchors import (
    compute_cred_def_id,
    compute_rev_reg_def_id,
    compute_revoked_bits,
    compute_schema_id,
    get_cred_def,
    get_rev_reg_def,
    get_schema,
    get_status_list,
    process_anchor_cred_def,
    process_anchor_rev_reg_def,
    process_anchor_schema,
    process_update_status_list,
)
from .did import compute_did, compute_multikey, is_did, render_document, render_resolution
from .errors import ERRORS
from .genesis import init_genesis
from .handlers import (
    ACTIONS,
    create_did_record,
    deactivate,
    get_did,
    is_accredited,
    is_active,
    keys_for,
    process_create_did,
    process_deactivate_did,
    process_update_did,
    require_controller,
)
from .invariants import check_dids
from .messages import (
    KIND_DEVICE,
    KIND_ORGANISATION,
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    AccreditIssuer,
    AnchorCredDef,
    AnchorRevRegDef,
    AnchorSchema,
    CreateDid,
    DeactivateDid,
    DidRecord,
    Service,
    UpdateDid,
    UpdateStatusList,
    VerificationKey,
    WithdrawAccreditation,
)
from .presentations import PresentationCheck, resolve_identifiers, verify_presentation
from .queries import (
    query_cred_def,
    query_did,
    query_issuers,
    query_rev_reg_def,
    query_schema,
    query_status_list,
    resolve_did,
)

MODULE = Module(
    name="identity",
    prefix=PREFIX_IDENTITY,
    errors=ERRORS,
    handlers={
        CreateDid: process_create_did,
        UpdateDid: process_update_did,
        DeactivateDid: process_deactivate_did,
        AnchorSchema: process_anchor_schema,
        AnchorCredDef: process_anchor_cred_def,
        AnchorRevRegDef: process_anchor_rev_reg_def,
        UpdateStatusList: process_update_status_list,
    },
    queries={
        "did": query_did,
        "schema": query_schema,
        "cred_def": query_cred_def,
        "rev_reg_def": query_rev_reg_def,
        "status_list": query_status_list,
        "issuers": query_issuers,
    },
    init_genesis=init_genesis,
    invariants=(check_dids,),
    actions=ACTIONS,
)

__all__ = [
    "AccreditIssuer", "AnchorCredDef", "AnchorRevRegDef", "AnchorSchema", "CreateDid", "DeactivateDid",
    "DidRecord", "KIND_DEVICE", "KIND_ORGANISATION", "MODULE", "PURPOSE_ASSERTION", "PURPOSE_AUTHENTICATION",
    "PresentationCheck", "Service", "UpdateDid", "UpdateStatusList", "VerificationKey", "WithdrawAccreditation",
    "compute_cred_def_id", "compute_did", "compute_multikey", "compute_rev_reg_def_id", "compute_revoked_bits",
    "compute_schema_id", "create_did_record", "deactivate", "get_cred_def", "get_did", "get_rev_reg_def",
    "get_schema", "get_status_list", "is_accredited", "is_active", "is_did", "keys_for", "render_document",
    "render_resolution", "require_controller", "resolve_did", "resolve_identifiers", "verify_presentation",
]
