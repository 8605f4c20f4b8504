"""A node with `[telemetry] gateways = 2` on the real Mosquitto: two gateway processes, each taking the
devices of its topic buckets, hand their interval roots to the node, which anchors ONE root per
interval over them. Vehicles in both shards publish; each owner reads back exactly its samples; every
record's inclusion proof (record -> shard root -> fleet root) verifies against the root on the ledger;
one anchor tx per interval; a shard SIGKILLed while it takes a stream is started again by the node and
loses no acknowledged record, anchors none twice."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field

import msgspec
import paho.mqtt.client as mqtt
import pytest

from test_api_helpers import LiveServer
from test_consent import Consents
from test_devices import new_device
from test_vault_e2e import NodeCity, _telemetry_home
from telemetry_helpers import vehicle_samples
from cityledger.core.encoding import encode
from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.consent import RegisterDataSet, RegisterVaultKey, compute_data_set_id, get_gateway_root
from cityledger.modules.devices import compute_device_did
from cityledger.node.home import load_config
from cityledger.node.runner import Node
from cityledger.offchain.telemetry import DeviceConfig, DeviceEntry, VaultKey, seal_window, verify_message
from cityledger.offchain.telemetry.anchor import FleetProof, compute_fleet_root, compute_records_root, is_included
from cityledger.offchain.telemetry.broker import device_shard, find_binary
from cityledger.offchain.telemetry.gateway import GatewayState
from cityledger.sdk import Client
from cityledger.sdk.vaults import ProofRefused, open_records, sign_request, verify_inclusion

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 120.0  # upper bound on any wait below (spawned processes on a loaded machine); nothing is timed
SHARDS = 2
PER_SHARD = 2  # vehicles in each shard's buckets
PHASE = 12  # windows per vehicle per phase
INTERVAL_S = 4


@dataclass
class Car:
    device: PrivateKey
    did: str
    owner: PrivateKey
    vault_key: VaultKey
    data_set: str
    entry: DeviceEntry
    client: mqtt.Client | None = None
    topic: str = ""
    seq: int = 0
    windows: list = field(default_factory=list)  # the samples of each window published, in order


def _cars(consents: Consents, insurer_key: VaultKey) -> list[Car]:
    """PER_SHARD bound vehicles in each shard, each of its own owner with a vault key and a data set
    the insurer may read (consent for insurance-pricing)."""
    cars, seed = [], 0xA0
    while min(Counter(device_shard(car.did, SHARDS) for car in cars).get(k, 0) for k in range(SHARDS)) < PER_SHARD:
        device, seed = new_device(seed), seed + 1
        did = compute_device_did(device.public_key)
        if sum(device_shard(car.did, SHARDS) == device_shard(did, SHARDS) for car in cars) == PER_SHARD:
            continue
        consents.fleet.register(device).raise_for_error()
        wallet = consents.city.wallet()
        owner = consents.fleet.owner(wallet, did)
        consents.fleet.bind(wallet, did, owner).raise_for_error()
        account, vault_key = address_to_str(owner.address()), VaultKey.generate()
        consents.ledger.send([owner], [RegisterVaultKey(account, vault_key.public)]).raise_for_error()
        commitment = sha256(did.encode())
        consents.ledger.send([owner], [RegisterDataSet("car", commitment, did, consents.gateway.did, "")]) \
            .raise_for_error()
        data_set = compute_data_set_id(owner.address(), did, "car", commitment)
        until = consents.ledger.height() + 10_000
        consents.grant(data_set, consumer=consents.insurer.did, purpose="insurance-pricing", period=(1, until),
                       expiry=until, key=owner).raise_for_error()
        cars.append(Car(device, did, owner, vault_key, data_set,
                        DeviceEntry(did, device.public_key, account, vault_key.public)))
    return cars


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet-node")
    home = tmp / "home"
    _telemetry_home(home)
    text = (home / "config.toml").read_text()
    # Intervals of a few seconds: each phase's records of both shards share one (a 1 s interval could
    # split a phase between two on a loaded machine).
    text = text.replace("[telemetry]\nenabled = true\ninterval_s = 1\n",
                        f"[telemetry]\nenabled = true\ninterval_s = {INTERVAL_S}\ngateways = {SHARDS}\n")
    assert f"gateways = {SHARDS}" in text
    (home / "config.toml").write_text(text)
    config = load_config(home)
    config.solo.block_interval_ms = 20
    node = Node(config)
    with LiveServer(node) as server, Client(server.url) as client:
        consents = Consents(NodeCity(tmp, node))
        insurer_key = VaultKey.generate()
        consents.ledger.send([consents.insurer.keys[0]], [RegisterVaultKey(consents.insurer.did, insurer_key.public)]) \
            .raise_for_error()
        cars = _cars(consents, insurer_key)  # registered after the shards started: they learn devices from the ledger
        for car in cars:
            creds = node.telemetry.broker.add_device(car.did)
            car.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=creds.username)
            car.client.username_pw_set(creds.username, creds.password)
            car.client.connect(creds.host, creds.port)
            car.client.loop_start()
            car.topic = creds.topic
        yield node, consents, client, cars, insurer_key
        for car in cars:
            car.client.disconnect()
            car.client.loop_stop()


def _publish_phase(cars: list[Car], start: int, published: dict, consumer: bytes, between=None) -> list:
    """PHASE windows per car, interleaved, QoS 1; between() after each round; the pending PUBACKs."""
    pending = []
    for _ in range(PHASE):
        if between is not None:
            between()
        for car in cars:
            window_start = start + 10 * car.seq
            samples = vehicle_samples(random.Random(f"{car.did} {car.seq}"), window_start)
            config = DeviceConfig(car.did, car.vault_key.public, car.data_set, "vehicle/1")
            raw = encode(seal_window(car.device, config, car.seq, window_start, samples, [consumer]))
            published[verify_message(raw, {car.did: car.entry}.get, None).record_id] = car
            car.windows.append(samples)
            car.seq += 1
            pending.append(car.client.publish(car.topic, raw, qos=1))
    return pending


def _acked(pending: list) -> None:
    for info in pending:
        info.wait_for_publish(WAIT_S)
        assert info.is_published()


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _received(node: Node, shard: int) -> int:
    path = node.telemetry.shard_folder(shard) / "state.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM received").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _all_anchored(node: Node, published: dict) -> bool:
    telemetry = node.telemetry
    for record_id in published:
        found = telemetry.inclusion_proof(record_id)
        if found is None or get_gateway_root(node.store, telemetry.gateway_did, found[0]) is None:
            return False
    return True


def test_two_gateway_processes_one_anchor_per_interval_and_a_killed_shard_loses_nothing(running):
    node, consents, client, cars, insurer_key = running
    telemetry = node.telemetry
    assert telemetry.gateway is None and [s.starts for s in telemetry.shards] == [1, 1]
    published: dict[bytes, Car] = {}
    start = int(time.time()) // 10 * 10 - 3600
    _acked(_publish_phase(cars, start, published, insurer_key.public))
    _wait(lambda: _all_anchored(node, published), "phase 1 anchored")
    # Phase 2: shard 0 SIGKILLed once it has taken some of the stream, the devices publishing on.
    taken, killed = _received(node, 0), []

    def kill_once_some_are_taken() -> None:
        if killed or _received(node, 0) < taken + PER_SHARD * 2:
            return
        telemetry.shards[0].kill()
        killed.append(_received(node, 0))

    _acked(_publish_phase(cars, start, published, insurer_key.public, kill_once_some_are_taken))
    _wait(lambda: killed or _received(node, 0) >= taken + PER_SHARD * 2, "shard 0 to take some of phase 2")
    if not killed:  # it took the stream faster than the devices sent it: kill it now, mid-interval still
        kill_once_some_are_taken()
    _wait(lambda: telemetry.shards[0].starts == 2 and telemetry.shards[0].pids, "shard 0 started again")
    _wait(lambda: _all_anchored(node, published), "phase 2 anchored")
    _check_read_back(client, cars, consents.insurer, insurer_key)
    _check_proofs_and_one_anchor_per_interval(node, published)


def _check_read_back(client: Client, cars: list[Car], insurer, insurer_key: VaultKey) -> None:
    """Each owner reads back exactly its car's samples, each window once, in order; so does the insurer
    under consent (which needs each record's recording height: its fleet root's on the ledger)."""
    for car in cars:
        status = client.status()
        account = address_to_str(car.owner.address())
        view = client.vault_read(sign_request(status.chain_id, [car.owner], "read", account, status.height,
                                              data_set=car.data_set, end_s=2**40))
        assert [samples for _, samples in open_records(view, car.vault_key)] == car.windows
        released = client.vault_consumer_read(sign_request(status.chain_id, insurer.keys, "consumer-read",
                                                           insurer.did, status.height, data_set=car.data_set,
                                                           purpose="insurance-pricing", end_s=2**40))
        assert [samples for _, samples in open_records(released, insurer_key)] == car.windows
    # One fleet proof through the route: record -> shard root -> fleet root, checked against the ledger.
    item = view.records[0]
    proof = client.vault_proof(sign_request(status.chain_id, [car.owner], "proof", account, status.height,
                                            record_id=item.record_id))
    assert proof.shard is not None and proof.fleet_proof is not None and proof.shard.count == proof.proof.size
    assert verify_inclusion(client, proof, item.record).hex() == item.record_id
    with pytest.raises(ProofRefused):  # a shard count other than the one its fleet leaf binds
        verify_inclusion(client, msgspec.structs.replace(
            proof, shard=msgspec.structs.replace(proof.shard, count=proof.shard.count + 1)), item.record)


def _check_proofs_and_one_anchor_per_interval(node: Node, published: dict) -> None:
    telemetry = node.telemetry
    # One AnchorGatewayRoot tx per interval: every one the ledger executed, counted from the blocks.
    events = Counter()
    for height in range(1, node.store.last_height() + 1):
        for result in node.store.get_block(height).results:
            for kind, attrs in result.events:
                if kind == "gateway_root_anchored" and result.code == 0:
                    events[int(dict(attrs)["interval"])] += 1
    fleet_roots = telemetry.fleet.roots()
    assert events and set(events.values()) == {1} and set(events) == {r.interval for r in fleet_roots}
    # Every record in exactly one anchored root, via its shard's root; the ledger holds each fleet root.
    placed: Counter[bytes] = Counter()
    both = 0
    states = [GatewayState(telemetry.shard_folder(k) / "state.sqlite") for k in range(SHARDS)]
    for fleet_root in fleet_roots:
        leaves = telemetry.fleet.leaves(fleet_root.interval)
        held = get_gateway_root(node.store, telemetry.gateway_did, fleet_root.interval)
        assert (held.root, held.count) == (compute_fleet_root(leaves), sum(leaf.count for leaf in leaves))
        for leaf in leaves:
            ids = states[leaf.shard].record_ids(leaf.interval) if leaf.count else []
            assert compute_records_root(ids) == leaf.root and len(ids) == leaf.count
            placed.update(ids)
        both += all(any(leaf.count and leaf.shard == k for leaf in leaves) for k in range(SHARDS))
    for state in states:
        state.close()
    assert set(placed) == set(published) and max(placed.values()) == 1
    assert both >= 1  # some interval's one root covers both shards' records
    for record_id in published:
        interval, proof = telemetry.inclusion_proof(record_id)
        held = get_gateway_root(node.store, telemetry.gateway_did, interval)
        assert isinstance(proof, FleetProof) and is_included(held.root, record_id, proof)
        assert not is_included(held.root, sha256(record_id), proof)
