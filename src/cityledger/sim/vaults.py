"""The simulated fleet as connected cars: telemetry into the owners' vaults, read back by the owners.

Each vehicle is set up as a real one, through the node's public API: a device key registered by the
car maker, a vehicle-registration credential from the node's hosted transport office in its owner's
wallet, bound to the owner's account with a presentation of it, the owner's vault key and the car's
data set (vehicle/1, the node's telemetry gateway) on the ledger, and broker credentials from the
node's host. At each trip end the vehicle seals the trip's 1 Hz samples in 10 s windows for its owner
(HPKE, signed by the device) and publishes them to the node's Mosquitto; the gateway files them in the
owner's vault. After the run each owner reads its trips back from its vault (a signed owner read),
opens them with its vault key and computes the trips' features and scores from them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..core.hashing import sha256
from ..core.keys import PrivateKey
from ..core.types import address_to_str
from ..modules.consent import RegisterDataSet, RegisterVaultKey, compute_data_set_id
from ..modules.devices import BindDevice, compute_device_did
from ..offchain.identity import VEHICLE_REGISTRATION
from ..offchain.identity.devices import build_registration, prove_ownership
from ..offchain.telemetry import DeviceConfig, DeviceSealer, SequenceCounter, VaultKey
from ..offchain.telemetry.format import Sample as TelemetrySample
from ..sdk import CityLedgerError, IdentityClient
from ..sdk.txs import sign
from ..sdk.vaults import device_recipients, open_records, publish_sealed, seal_samples, sign_request

SCHEMA_ID = "vehicle-telemetry-1"
TX_WAIT_S = 120.0  # per set-up transaction the run waits for
BROKER_WAIT_S = 120.0  # for the node to take a new device's broker credentials up (its round: every 10 s)
VAULT_WAIT_S = 120.0  # for the gateway to file a trip's last windows in the owner's vault
RETRY_S = 0.5
PUBLISH_TIMEOUT_S = 60.0  # for the broker to acknowledge a trip's windows
# windows one owner read asks for: at most two records a window (a trip ending and the next starting
# in it), within the vault service's MAX_RELEASE_RECORDS (1,000) a read answers
READ_CHUNK_WINDOWS = 400


@dataclass(frozen=True)
class NodeHost:
    """What the node's host hands the simulation: the car maker's key, the hosted transport office, the
    gateway's DID and a way to give a device broker credentials (`cityledger telemetry device-add`)."""

    maker: PrivateKey
    maker_did: str
    office_did: str
    office_token: str
    gateway_did: str
    add_device: Callable[[str], dict[str, Any]]  # a DID -> {username, password, topic, host, port}
    ledger_folder: Path | None = None  # the node's data folder: the scan reads its store's files too


@dataclass
class ConnectedVehicle:
    """One car: its device key and sealer, its owner's account and vault key, its data set and broker login."""

    device: PrivateKey
    did: str
    owner: PrivateKey
    vault_key: VaultKey
    data_set: str
    credentials: dict[str, Any]
    wallet: Any = None  # the owner's wallet, holding the car's vehicle-registration credential
    sealer: DeviceSealer | None = None
    consumers: list[bytes] = field(default_factory=list)
    windows: int = 0  # published
    online: bool = False  # the broker took its login once


def connect_fleet(url: str, host: NodeHost, count: int, work: Path,
                  say: Callable[[str], None] = lambda _: None) -> list[ConnectedVehicle]:
    """Register, credential, bind and connect `count` vehicles on the node at `url`."""
    with IdentityClient(url, timeout_s=TX_WAIT_S) as client, \
            IdentityClient(url, token=host.office_token, timeout_s=TX_WAIT_S) as office:
        chain_id = client.status().chain_id
        if VEHICLE_REGISTRATION not in office.get_issuer(host.office_did)["published"]:
            say("publishing vehicle-registration at the transport office")
            office.publish(host.office_did, VEHICLE_REGISTRATION, timeout_s=TX_WAIT_S * 10)
        devices = [PrivateKey.generate() for _ in range(count)]
        nonce = client.get_nonce(host.maker.address())
        say(f"registering {count} vehicles")
        _commit_all(client, [sign(chain_id, [host.maker], nonce + index, [build_registration(
            chain_id, "vehicle", "SimCar-1", device, host.maker_did, host.maker)])
            for index, device in enumerate(devices)], "register")
        fleet, txs = [], []
        for index, device in enumerate(devices):
            say(f"vehicle {index + 1}/{count}: registration credential, binding, vault key, data set")
            vehicle, tx = _own(client, office, host, chain_id, device, work / "wallets" / f"car-{index}")
            fleet.append(vehicle)
            txs.append(tx)
        _commit_all(client, txs, "bind")
        (work / "seq").mkdir(parents=True, exist_ok=True, mode=0o700)
        for index, vehicle in enumerate(fleet):
            owner_key, vehicle.consumers = device_recipients(client, vehicle.data_set)
            config = DeviceConfig(vehicle.did, owner_key, vehicle.data_set, "vehicle/1")
            vehicle.sealer = DeviceSealer(vehicle.device, config, SequenceCounter(work / "seq" / f"car-{index}"))
            vehicle.credentials = host.add_device(vehicle.did)
    return fleet


def _own(client: IdentityClient, office: IdentityClient, host: NodeHost, chain_id: str, device: PrivateKey,
         folder: Path) -> tuple[ConnectedVehicle, bytes]:
    """The owner's side of one car: wallet, credential, and the tx binding it with vault key and data set."""
    did = compute_device_did(device.public_key)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    wallet = client.open_wallet(folder / "owner.wallet", os.urandom(16).hex(), create=True,
                                tails_cache=folder / "tails")
    owner = wallet.account("vehicle", 0)
    account = address_to_str(owner.address())
    offer = office.create_offer(host.office_did, VEHICLE_REGISTRATION, {
        "device_did": did, "owner_account": account,
        "registered_on": int(datetime.now(timezone.utc).strftime("%Y%m%d"))}, f"SIM-{did[-24:]}")
    client.obtain_credential(wallet, offer)
    vault_key = VaultKey.generate()
    commitment = sha256(b"simulated car " + did.encode())  # the data set's description, kept by the owner
    messages = [BindDevice(did, prove_ownership(wallet, client.ledger, chain_id, did, owner)),
                RegisterVaultKey(account, vault_key.public),
                RegisterDataSet(SCHEMA_ID, commitment, did, host.gateway_did, "")]
    data_set = compute_data_set_id(owner.address(), did, SCHEMA_ID, commitment)
    vehicle = ConnectedVehicle(device, did, owner, vault_key, data_set, {}, wallet)
    return vehicle, sign(chain_id, [owner], client.get_nonce(owner.address()), messages)


def _commit_all(client: IdentityClient, txs: list[bytes], what: str) -> None:
    """Submit every tx, then wait for each; RuntimeError naming the first refused."""
    ids = [client.submit(tx).tx_id for tx in txs]
    for tx_id in ids:
        done = client.wait(tx_id, timeout_s=TX_WAIT_S)
        if done.result is None or not done.result.ok:
            raise RuntimeError(f"{what}: tx {tx_id} not committed ({done.status}: {done.result and done.result.log})")


def publish_trip(vehicle: ConnectedVehicle, telemetry: list[TelemetrySample]) -> None:
    """The vehicle's trip-end upload: its samples sealed per window for the owner, published at QoS 1."""
    payloads = seal_samples(vehicle.sealer, telemetry, vehicle.consumers)
    creds = vehicle.credentials
    deadline = time.monotonic() + BROKER_WAIT_S
    while True:
        try:
            publish_sealed(creds["host"], int(creds["port"]), creds["username"], creds["password"], creds["topic"],
                           payloads, PUBLISH_TIMEOUT_S)
            break
        except CityLedgerError:
            # a new device's login is refused until the node's next round takes its credentials up
            if vehicle.online or time.monotonic() > deadline:
                raise
            time.sleep(RETRY_S)
    vehicle.online = True
    vehicle.windows += len(payloads)


def read_samples(client: IdentityClient, chain_id: str, vehicle: ConnectedVehicle, first_s: int, last_s: int,
                 expected: int) -> list[TelemetrySample]:
    """The owner's samples of [first_s, last_s] from its vault in time order, once the gateway filed all
    `expected` (or VAULT_WAIT_S passed): signed owner reads of READ_CHUNK_WINDOWS windows each."""
    window_s = vehicle.sealer.config.window_s
    deadline = time.monotonic() + VAULT_WAIT_S
    while True:
        samples: list[TelemetrySample] = []
        for start in range(first_s - first_s % window_s, last_s + 1, window_s * READ_CHUNK_WINDOWS):
            end = min(start + window_s * READ_CHUNK_WINDOWS, last_s + 1)
            samples += [sample for _, window in _read(client, chain_id, vehicle, start, end)
                        for sample in window if first_s <= sample.t_s <= last_s]
        if len(samples) >= expected or time.monotonic() > deadline:
            return sorted(samples, key=lambda sample: sample.t_s)
        time.sleep(RETRY_S)


def _read(client: IdentityClient, chain_id: str, vehicle: ConnectedVehicle, start_s: int, end_s: int):
    """One signed owner read of the records whose window starts in [start_s, end_s), opened."""
    account = address_to_str(vehicle.owner.address())
    body = sign_request(chain_id, [vehicle.owner], "read", account, client.status().height,
                        data_set=vehicle.data_set, start_s=start_s, end_s=end_s)
    return open_records(client.vault_read(body), vehicle.vault_key)
