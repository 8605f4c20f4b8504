"""devices: vehicles, chargers, batteries and meters with their own keys, bound to pseudonymous owners."""

from ...core.statekeys import PREFIX_DEVICES
from ..base import Module
from .errors import ERRORS
from .genesis import init_genesis
from .handlers import (
    check_device_message,
    compute_binding_request,
    compute_device_did,
    compute_message_bytes,
    compute_registration_bytes,
    get_device,
    is_device_message,
    process_accept_transfer,
    process_bind,
    process_decommission,
    process_offer_transfer,
    process_register,
)
from .invariants import check_devices
from .messages import (
    BINDING_TYPES,
    KINDS,
    MANUFACTURER_TYPE,
    AcceptTransfer,
    BindDevice,
    Decommission,
    DeviceRecord,
    OfferTransfer,
    RegisterDevice,
)
from .queries import query_device, query_verify

MODULE = Module(
    name="devices",
    prefix=PREFIX_DEVICES,
    errors=ERRORS,
    handlers={
        RegisterDevice: process_register,
        BindDevice: process_bind,
        OfferTransfer: process_offer_transfer,
        AcceptTransfer: process_accept_transfer,
        Decommission: process_decommission,
    },
    queries={"device": query_device, "verify": query_verify},
    init_genesis=init_genesis,
    invariants=(check_devices,),
)

__all__ = [
    "AcceptTransfer", "BINDING_TYPES", "BindDevice", "Decommission", "DeviceRecord", "KINDS", "MANUFACTURER_TYPE",
    "MODULE", "OfferTransfer", "RegisterDevice", "check_device_message", "compute_binding_request",
    "compute_device_did", "compute_message_bytes", "compute_registration_bytes", "get_device",
    "is_device_message",
]
