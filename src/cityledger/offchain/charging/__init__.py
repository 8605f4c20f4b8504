"""EV charging: a CSMS speaking OCPP 2.0.1 and 1.6-J, paid by vehicles with payment-channel vouchers.

Off chain: meter readings, session times and receipts stay here; the ledger sees only the
channel's open, redeems and closes (docs/CHARGING.md).
"""

import importlib
from typing import Any

# Names load their module on first use, so a node's config (node/home.py reads settings.py and
# tariff.py) does not import the OCPP and WebSocket stack.
_MODULES = {
    "AccountingError": "accounting", "ChannelTerms": "accounting", "Receipt": "accounting", "Session": "accounting",
    "Voucher": "accounting", "VoucherBook": "accounting", "compute_id_token": "accounting",
    "SUBPROTOCOLS": "csms", "Csms": "csms", "DEFAULT_MARGIN_MICRO": "settings", "DEFAULT_PORT": "settings",
    "ChargerRegistry": "registry", "RegistryError": "registry", "Tariff": "tariff", "compute_cost_micro": "tariff",
    "VehicleClient": "vehicle_protocol", "AuthorizationRefused": "vehicle_auth", "VehicleAuthority": "vehicle_auth",
    "CsmsStore": "store", "SESSION_TIMEOUT_S": "settings",
}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULES[name]}", __name__), name)


__all__ = [
    "DEFAULT_MARGIN_MICRO",
    "DEFAULT_PORT",
    "SESSION_TIMEOUT_S",
    "SUBPROTOCOLS",
    "AccountingError",
    "AuthorizationRefused",
    "ChannelTerms",
    "ChargerRegistry",
    "Csms",
    "CsmsStore",
    "Receipt",
    "RegistryError",
    "Session",
    "Tariff",
    "VehicleAuthority",
    "VehicleClient",
    "Voucher",
    "VoucherBook",
    "compute_cost_micro",
    "compute_id_token",
]
