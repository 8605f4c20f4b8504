"""Client side of the device registry: manufacturer statements, ownership proofs, device signatures."""

from __future__ import annotations

from typing import Sequence

from ...core.keys import PrivateKey
from ...modules.devices import (
    RegisterDevice,
    compute_binding_request,
    compute_message_bytes,
    compute_registration_bytes,
    get_device,
)
from .ledger import LedgerReader
from .wallet import Wallet


def build_registration(chain_id: str, kind: str, model: str, device: PrivateKey, manufacturer_did: str,
                       manufacturer_key: PrivateKey) -> RegisterDevice:
    """A register message signed by the manufacturer's assertion key and by the device's own key."""
    unsigned = RegisterDevice(kind, model, device.public_key, manufacturer_did, b"", b"")
    statement = compute_registration_bytes(chain_id, unsigned)
    return RegisterDevice(kind, model, device.public_key, manufacturer_did, manufacturer_key.sign(statement),
                          device.sign(statement))


def prove_ownership(wallet: Wallet, ledger: LedgerReader, chain_id: str, device_did: str, owner: PrivateKey) -> bytes:
    """A presentation of the wallet's registration credential for this device and owner account."""
    record = get_device(ledger.state_at(ledger.height()), device_did)
    if record is None:
        raise LookupError(f"device: {device_did!r} is not registered")
    request = compute_binding_request(chain_id, record, owner.address(), ledger.height())
    return wallet.present(request, ledger).encode()


def sign_device_message(device: PrivateKey, device_did: str, payload: bytes) -> bytes:
    """A device's signature over a payload, as the registry verifies it."""
    return device.sign(compute_message_bytes(device_did, payload))


def sign_many(device: PrivateKey, device_did: str, payloads: Sequence[bytes]) -> list[bytes]:
    """Signatures over several payloads."""
    return [sign_device_message(device, device_did, payload) for payload in payloads]
