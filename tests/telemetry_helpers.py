"""Shared builders for the telemetry and vault tests: a registered device, its owner, samples."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from cityledger.core.keys import SCHEME_ED25519, PrivateKey
from cityledger.modules.identity.did import compute_did
from cityledger.offchain.telemetry import (
    DeviceConfig,
    DeviceEntry,
    DeviceSealer,
    Sample,
    SequenceCounter,
    VaultKey,
)

OWNER = "city" + "ab" * 20


@dataclass
class Fleet:
    """Devices of one owner, and the registry the gateway looks them up in."""

    owner_key: VaultKey
    folder: Path
    registry: dict[str, DeviceEntry] = field(default_factory=dict)

    def add(self, dataset: str = "ds-car-1", scheme: int = SCHEME_ED25519, schema: str = "vehicle/1") -> DeviceSealer:
        """A registered device sealing to the owner's vault key."""
        key = PrivateKey.generate(scheme)
        did = compute_did(key.signer(), bytes(16))
        config = DeviceConfig(did, self.owner_key.public, dataset, schema)
        self.registry[did] = DeviceEntry(did, key.public_key, OWNER, self.owner_key.public)
        return DeviceSealer(key, config, SequenceCounter(self.folder / f"{did.replace(':', '_')}.seq"))

    def lookup(self, did: str) -> DeviceEntry | None:
        """The registry as the gateway sees it."""
        return self.registry.get(did)


def vehicle_samples(rng: random.Random, start_s: int, count: int = 10) -> list[Sample]:
    """count 1 Hz vehicle samples from start_s with distinctive values (5-digit speeds, 9-10 digit
    coordinates), so that finding one of them in a file by chance is all but impossible."""
    return [Sample(start_s + i, (rng.randrange(400_000_000, 600_000_000), rng.randrange(100_000_000, 1_500_000_000),
                                 rng.randrange(10_000, 20_000)))
            for i in range(count)]


def connect_devices(broker, dids: list[str]) -> list[tuple[mqtt.Client, str]]:
    """Each device's own MQTT client (its broker credentials), connected and looping, with its topic."""
    clients = []
    for did in dids:
        creds = broker.add_device(did)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=creds.username)
        client.username_pw_set(creds.username, creds.password)
        client.connect(creds.host, broker.port)
        client.loop_start()
        clients.append((client, creds.topic))
    return clients


def disconnect_devices(clients: list[tuple[mqtt.Client, str]]) -> None:
    """Disconnect the devices' clients and stop their loops."""
    for client, _ in clients:
        client.disconnect()
        client.loop_stop()
