"""Every state key of the device registry, built in one place."""

from ...core.statekeys import PREFIX_DEVICES, collection_prefix, make_key

_DEVICE = 0x01

DEVICES_PREFIX = collection_prefix(PREFIX_DEVICES, _DEVICE)


def device_key(did: str) -> bytes:
    """Key of a device record, by the device's DID."""
    return make_key(PREFIX_DEVICES, _DEVICE, did.encode())
