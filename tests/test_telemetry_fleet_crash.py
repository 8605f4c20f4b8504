"""Crash of the node side of a sharded gateway: the process holding the fleet's anchoring point and its
two gateway processes (tests/fleet_crash_driver.py) SIGKILLed while the devices stream; its gateway
processes stop by themselves (their pipe closed); on restart nothing acknowledged is lost, every record
is under exactly one anchored fleet root, and each interval is anchored with one root."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cityledger.offchain.telemetry.anchor import compute_fleet_root, compute_records_root
from cityledger.offchain.telemetry.broker import device_shard, find_binary
from cityledger.offchain.telemetry.fleet import FleetAnchor
from cityledger.offchain.telemetry.gateway import GatewayState
from cityledger.offchain.vaults import VaultHost
from telemetry_helpers import OWNER, connect_devices
from test_telemetry_crash import World as GatewayWorld
from test_telemetry_crash import acked_by_broker, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

PER_SHARD = 2
DRIVER = Path(__file__).parent / "fleet_crash_driver.py"


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class World(GatewayWorld):
    """The gateway crash test's broker, devices and stream (more devices until each shard has
    PER_SHARD), run by the fleet driver instead of one gateway."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        added = []
        while min(sum(device_shard(s.config.device_did, 2) == k for s in self.sealers) for k in (0, 1)) < PER_SHARD:
            added.append(self.fleet.add())
            self.sealers.append(added[-1])
        registry = {did: [e.public_key.scheme, e.public_key.key.hex(), e.owner, e.owner_vault_key.hex()]
                    for did, e in self.fleet.registry.items()}
        (tmp / "registry.json").write_text(json.dumps(registry))
        self.clients += connect_devices(self.broker, [sealer.config.device_did for sealer in added])
        self.next_seq += [0] * len(added)
        self.shard_pids: list[int] = []

    def start(self) -> None:
        """The fleet driver; its gateway processes' pids."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                           os.environ.get("PYTHONPATH", "")]))
        args = [self.tmp / "home", self.tmp / "registry.json", self.broker.host, self.broker.port,
                self.tmp / "gateway.password", self.anchors]
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), *map(str, args)], env=env, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["ready"], "the fleet driver did not start"
        self.shard_pids = [int(pid) for pid in line[1:]]

    def fleet_roots(self) -> dict[int, tuple[str, int]]:
        """What reached the ledger: interval -> (root hex, count), one root per interval."""
        roots: dict[int, tuple[str, int]] = {}
        for interval, root, count in self.anchored():
            assert roots.setdefault(interval, (root, count)) == (root, count), f"interval {interval}: two roots"
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


@pytest.fixture
def world(tmp_path):
    built = World(tmp_path)
    try:
        yield built
    finally:  # the driver and its gateway processes never outlive the test
        built.close()


def test_the_node_side_killed_mid_stream_loses_nothing_and_anchors_nothing_twice(world):
    world.start()
    killed: list[int] = []

    def kill_once_some_are_taken() -> None:
        if killed or world.received() < 4 * PER_SHARD * 2:
            return
        world.kill_gateway()
        killed.append(world.received())

    pending = world.publish_phase(kill_once_some_are_taken)
    wait_until(lambda: killed or world.received() >= 4 * PER_SHARD * 2, "the shards to take some records")
    if not killed:
        kill_once_some_are_taken()
    acked_by_broker(pending)
    orphans = world.shard_pids
    wait_until(lambda: not any(_alive(pid) for pid in orphans), "the killed node's gateway processes to stop")
    world.start()
    acked_by_broker(world.publish_phase())
    wait_until(lambda: sum(count for _, count in world.fleet_roots().values()) >= len(world.published),
               "every record anchored")
    world.kill_gateway()
    assert 0 < killed[0] < len(world.published)
    _check_each_record_under_one_fleet_root(world)


def _check_each_record_under_one_fleet_root(world: World) -> None:
    home = world.tmp / "home"
    fleet = FleetAnchor(home / "fleet.sqlite", 2, 1, lambda *_: None)
    states = [GatewayState(home / f"gateway-{k}" / "state.sqlite") for k in (0, 1)]
    placed: Counter[bytes] = Counter()
    for interval, (root, count) in world.fleet_roots().items():
        leaves = fleet.leaves(interval)
        assert compute_fleet_root(leaves).hex() == root and sum(leaf.count for leaf in leaves) == count
        for leaf in leaves:
            ids = states[leaf.shard].record_ids(leaf.interval) if leaf.count else []
            assert compute_records_root(ids) == leaf.root and len(ids) == leaf.count
            placed.update(ids)
    assert set(placed) == set(world.published) and max(placed.values()) == 1
    for state in states:
        state.close()
    fleet.close()
    host = VaultHost(world.tmp / "home" / "vaults")
    stored = host.vault(OWNER).list("ds-car-1", 0, 2**62)
    assert sorted(stored) == sorted(world.published)
    host.close()
