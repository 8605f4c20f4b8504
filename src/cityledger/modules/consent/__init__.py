"""consent: owners' data sets, purpose-bound consents, access-log, records-root and gateway-root anchors."""

from functools import partial

from ...core.statekeys import PREFIX_CONSENT
from ..base import Module
from .anchors import (
    get_gateway_last_interval,
    get_gateway_root,
    get_log_head,
    get_records_root,
    iter_gateway_roots,
    iter_log_anchors,
    iter_records_roots,
    process_anchor_access_log,
    process_anchor_gateway_root,
    process_anchor_records_root,
)
from .errors import ERRORS
from .expected import Devices, Identity
from .owned import query_data_sets_of
from .genesis import init_genesis
from .handlers import (
    compute_data_set_id,
    find_valid_consent,
    get_consent,
    get_data_set,
    is_consent_valid,
    is_valid_at,
    iter_consumer_consents,
    iter_data_set_consents,
    process_grant,
    process_register_data_set,
    process_revoke,
)
from .invariants import check_anchors, check_consents, check_data_sets, check_gateway_roots, check_vault_keys
from .messages import (
    GATEWAY_TYPE,
    PURPOSES,
    VAULT_SERVICE_TYPE,
    ZERO_HEAD,
    AccessLogAnchor,
    AnchorAccessLog,
    AnchorGatewayRoot,
    AnchorRecordsRoot,
    ConsentRecord,
    DataSetRecord,
    GatewayRoot,
    GrantConsent,
    RecordsRoot,
    RegisterDataSet,
    RevokeConsent,
    VaultKeyRecord,
    RegisterVaultKey,
)
from .vaultkeys import get_vault_key, is_usable_vault_key, process_register_vault_key, query_vault_key
from .queries import (
    query_access_log,
    query_consent,
    query_consumer_consents,
    query_data_set,
    query_data_set_consents,
    query_gateway_root,
    query_gateway_roots,
    query_records_roots,
    query_valid,
)


def new_module(identity: Identity, devices: Devices) -> Module:
    """The consent module, given what it needs of identity and devices (node/modules.py wires them)."""
    return Module(
        name="consent",
        prefix=PREFIX_CONSENT,
        errors=ERRORS,
        handlers={
            RegisterDataSet: partial(process_register_data_set, identity, devices),
            GrantConsent: partial(process_grant, identity),
            RevokeConsent: process_revoke,
            AnchorAccessLog: partial(process_anchor_access_log, identity),
            AnchorRecordsRoot: partial(process_anchor_records_root, identity),
            AnchorGatewayRoot: partial(process_anchor_gateway_root, identity),
            RegisterVaultKey: partial(process_register_vault_key, identity),
        },
        queries={
            "data_set": query_data_set,
            "consent": query_consent,
            "consents": query_data_set_consents,
            "consumer": query_consumer_consents,
            "valid": partial(query_valid, identity),
            "access_log": query_access_log,
            "records_roots": query_records_roots,
            "gateway_root": query_gateway_root,
            "gateway_roots": query_gateway_roots,
            "vault_key": query_vault_key,
            "data_sets_of": query_data_sets_of,
        },
        init_genesis=init_genesis,
        invariants=(partial(check_data_sets, devices), check_consents, check_anchors, check_gateway_roots,
                    check_vault_keys),
    )


__all__ = [
    "AccessLogAnchor", "AnchorAccessLog", "AnchorGatewayRoot", "AnchorRecordsRoot", "ConsentRecord",
    "DataSetRecord", "Devices", "GATEWAY_TYPE", "GatewayRoot", "GrantConsent", "Identity", "PURPOSES", "RecordsRoot", "RegisterDataSet", "RegisterVaultKey", "RevokeConsent", "VaultKeyRecord",
    "VAULT_SERVICE_TYPE", "ZERO_HEAD", "compute_data_set_id", "find_valid_consent", "get_consent",
    "get_data_set", "get_vault_key", "is_usable_vault_key", "get_gateway_last_interval", "get_gateway_root", "get_log_head", "get_records_root", "is_consent_valid", "is_valid_at",
    "iter_consumer_consents", "iter_data_set_consents", "iter_gateway_roots", "iter_log_anchors", "iter_records_roots", "new_module",
]
