"""EV charging: a CSMS speaking OCPP 2.0.1 and 1.6-J, paid by vehicles with payment-channel vouchers.

Off chain: meter readings, session times and receipts stay here; the ledger sees only the
channel's open, redeems and closes (docs/CHARGING.md).
"""

from .accounting import AccountingError, ChannelTerms, Receipt, Session, Voucher, VoucherBook, compute_id_token
from .csms import DEFAULT_MARGIN_MICRO, DEFAULT_PORT, SUBPROTOCOLS, Csms
from .registry import ChargerRegistry, RegistryError
from .tariff import Tariff, compute_cost_micro
from .vehicle_protocol import VehicleClient

__all__ = [
    "DEFAULT_MARGIN_MICRO",
    "DEFAULT_PORT",
    "SUBPROTOCOLS",
    "AccountingError",
    "ChannelTerms",
    "ChargerRegistry",
    "Csms",
    "Receipt",
    "RegistryError",
    "Session",
    "Tariff",
    "VehicleClient",
    "Voucher",
    "VoucherBook",
    "compute_cost_micro",
    "compute_id_token",
]
