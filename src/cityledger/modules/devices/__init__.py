"""devices: vehicles, chargers, batteries and meters with their own keys, bound to pseudonymous owners."""

from functools import partial

from ...core.statekeys import PREFIX_DEVICES
from ..base import Module
from .errors import ERRORS
from .expected import Identity
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
from .owned import query_list, query_owned
from .queries import query_device, query_verify


def new_module(identity: Identity) -> Module:
    """The devices module, given what it needs of identity (node/modules.py passes identity's keeper)."""
    return Module(
        name="devices",
        prefix=PREFIX_DEVICES,
        errors=ERRORS,
        handlers={
            RegisterDevice: partial(process_register, identity),
            BindDevice: partial(process_bind, identity),
            OfferTransfer: process_offer_transfer,
            AcceptTransfer: partial(process_accept_transfer, identity),
            Decommission: partial(process_decommission, identity),
        },
        queries={"device": query_device, "verify": partial(query_verify, identity), "owned": query_owned,
                 "list": query_list},
        init_genesis=init_genesis,
        invariants=(partial(check_devices, identity),),
    )


__all__ = [
    "AcceptTransfer", "BINDING_TYPES", "BindDevice", "Decommission", "DeviceRecord", "Identity", "KINDS", "MANUFACTURER_TYPE",
    "OfferTransfer", "RegisterDevice", "check_device_message", "compute_binding_request",
    "compute_device_did", "compute_message_bytes", "compute_registration_bytes", "get_device",
    "is_device_message", "new_module",
]
