"""Crash of the node side of a sharded gateway: the process holding the fleet's anchoring point and its
two gateway processes (tests/fleet_crash_driver.py) SIGKILLed while the devices stream; its gateway
processes stop by themselves (their pipe closed); on restart nothing acknowledged is lost, every record
is under exactly one anchored fleet root, and each interval is anchored with one root."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cityledger.core.encoding import encode
from cityledger.offchain.telemetry import VaultKey, seal_window, verify_message
from cityledger.offchain.telemetry.anchor import compute_fleet_root, compute_records_root
from cityledger.offchain.telemetry.broker import Broker, device_shard, find_binary
from cityledger.offchain.telemetry.fleet import FleetAnchor
from cityledger.offchain.telemetry.gateway import GatewayState
from cityledger.offchain.vaults import VaultHost
from telemetry_helpers import OWNER, Fleet, vehicle_samples

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 120.0  # upper bound on every wait; nothing asserts how long anything took
PER_SHARD = 2
PER_PHASE = 40  # windows per device per phase
T0 = 1_800_000_000
DRIVER = Path(__file__).parent / "fleet_crash_driver.py"


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = Broker(tmp / "broker")
        self.broker.start()
        self.fleet = Fleet(VaultKey.generate(), tmp / "devices")
        self.fleet.folder.mkdir()
        self.sealers = []
        while min(Counter(device_shard(s.config.device_did, 2) for s in self.sealers).get(k, 0) for k in (0, 1)) \
                < PER_SHARD:
            sealer = self.fleet.add()
            if sum(device_shard(s.config.device_did, 2) == device_shard(sealer.config.device_did, 2)
                   for s in self.sealers) < PER_SHARD:
                self.sealers.append(sealer)
        registry = {did: [e.public_key.scheme, e.public_key.key.hex(), e.owner, e.owner_vault_key.hex()]
                    for did, e in self.fleet.registry.items()}
        (tmp / "registry.json").write_text(json.dumps(registry))
        (tmp / "gateway.password").write_text(self.broker.gateway_password())
        self.anchors = tmp / "anchors"
        self.anchors.touch()
        self.clients = []
        for sealer in self.sealers:
            creds = self.broker.add_device(sealer.config.device_did)
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=creds.username)
            client.username_pw_set(creds.username, creds.password)
            client.connect(creds.host, self.broker.port)
            client.loop_start()
            self.clients.append((client, creds.topic))
        self.next_seq = [0] * len(self.sealers)
        self.published: set[bytes] = set()
        self.proc: subprocess.Popen | None = None
        self.shard_pids: list[int] = []

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                           os.environ.get("PYTHONPATH", "")]))
        args = [self.tmp / "home", self.tmp / "registry.json", self.broker.host, self.broker.port,
                self.tmp / "gateway.password", self.anchors]
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), *map(str, args)], env=env, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["ready"], "the fleet driver did not start"
        self.shard_pids = [int(pid) for pid in line[1:]]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()

    def publish_phase(self, between=None) -> list:
        pending = []
        for _ in range(PER_PHASE):
            if between is not None:
                between()
            for index, sealer in enumerate(self.sealers):
                seq = self.next_seq[index]
                self.next_seq[index] += 1
                start = T0 + 10 * seq
                raw = encode(seal_window(sealer.key, sealer.config, seq, start,
                                         vehicle_samples(random.Random(f"{index} {seq}"), start)))
                self.published.add(verify_message(raw, self.fleet.lookup, None).record_id)
                client, topic = self.clients[index]
                pending.append(client.publish(topic, raw, qos=1))
        return pending

    def anchored(self) -> dict[int, tuple[str, int]]:
        roots: dict[int, tuple[str, int]] = {}
        for interval, root, count in (line.split() for line in self.anchors.read_text().splitlines()):
            assert roots.setdefault(int(interval), (root, int(count))) == (root, int(count)), "two roots"
        return roots

    def received(self) -> int:
        """Records both shards have filed so far (read-only from their state files)."""
        total = 0
        for k in (0, 1):
            path = self.tmp / "home" / f"gateway-{k}" / "state.sqlite"
            if not path.exists():
                continue
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                total += db.execute("SELECT COUNT(*) FROM received").fetchone()[0]
            except sqlite3.OperationalError:  # the shard has not created its tables yet
                pass
            finally:
                db.close()
        return total

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        for client, _ in self.clients:
            client.disconnect()
            client.loop_stop()
        self.broker.stop()


@pytest.fixture
def world(tmp_path):
    built = World(tmp_path)
    yield built
    built.close()


def _acked(pending: list) -> None:
    for info in pending:
        info.wait_for_publish(WAIT_S)
        assert info.is_published()


def test_the_node_side_killed_mid_stream_loses_nothing_and_anchors_nothing_twice(world):
    world.start()
    killed: list[int] = []

    def kill_once_some_are_taken() -> None:
        if killed or world.received() < 4 * PER_SHARD * 2:
            return
        world.kill()
        killed.append(world.received())

    pending = world.publish_phase(kill_once_some_are_taken)
    _wait(lambda: killed or world.received() >= 4 * PER_SHARD * 2, "the shards to take some records")
    if not killed:
        kill_once_some_are_taken()
    _acked(pending)
    orphans = world.shard_pids
    _wait(lambda: not any(_alive(pid) for pid in orphans), "the killed node's gateway processes to stop")
    world.start()
    _acked(world.publish_phase())
    _wait(lambda: sum(count for _, count in world.anchored().values()) >= len(world.published),
          "every record anchored")
    world.kill()
    assert 0 < killed[0] < len(world.published)
    _check_each_record_under_one_fleet_root(world)


def _check_each_record_under_one_fleet_root(world: World) -> None:
    home = world.tmp / "home"
    fleet = FleetAnchor(home / "fleet.sqlite", 2, 1, lambda *_: None)
    states = [GatewayState(home / f"gateway-{k}" / "state.sqlite") for k in (0, 1)]
    placed: Counter[bytes] = Counter()
    for interval, (root, count) in world.anchored().items():
        leaves = fleet.leaves(interval)
        assert compute_fleet_root(leaves).hex() == root and sum(leaf.count for leaf in leaves) == count
        for leaf in leaves:
            ids = states[leaf.shard].record_ids(leaf.interval) if leaf.count else []
            assert compute_records_root(ids) == leaf.root and len(ids) == leaf.count
            placed.update(ids)
    assert set(placed) == world.published and max(placed.values()) == 1
    for state in states:
        state.close()
    fleet.close()
    host = VaultHost(world.tmp / "home" / "vaults")
    stored = host.vault(OWNER).list("ds-car-1", 0, 2**62)
    assert sorted(stored) == sorted(world.published)
    host.close()
