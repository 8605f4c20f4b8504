"""Crash: the gateway, a real child process on the real Mosquitto, killed (SIGKILL) mid-interval and
while an interval closes; after each restart no record the broker acknowledged to a device is lost
and every record is in exactly one anchored root."""

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

import pytest

from cityledger.core.encoding import encode
from cityledger.offchain.telemetry import VaultKey, compute_records_root, seal_window, verify_message
from cityledger.offchain.telemetry.broker import Broker, find_binary
from cityledger.offchain.telemetry.journal import read_last_batch
from cityledger.offchain.vaults import VaultHost
from telemetry_helpers import OWNER, Fleet, connect_devices, disconnect_devices, vehicle_samples

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 30.0  # upper bound on every wait; nothing asserts how long anything took
T0 = 1_800_000_000 - 1_800_000_000 % 60  # the start of an interval of 60 s (the driver's)
DEVICES = 4
PER_PHASE = 60  # windows per device per phase
DRIVER = Path(__file__).parent / "gateway_crash_driver.py"


class World:
    """The broker, the devices and their pre-sealed windows, the files the driver reads and writes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = Broker(tmp / "broker")
        self.broker.start()
        self.fleet = Fleet(VaultKey.generate(), tmp / "devices")
        self.fleet.folder.mkdir()
        self.sealers = [self.fleet.add() for _ in range(DEVICES)]
        registry = {did: [e.public_key.scheme, e.public_key.key.hex(), e.owner, e.owner_vault_key.hex()]
                    for did, e in self.fleet.registry.items()}
        (tmp / "registry.json").write_text(json.dumps(registry))
        (tmp / "gateway.password").write_text(self.broker.gateway_password())
        self.clock, self.anchors = tmp / "clock", tmp / "anchors"
        self.anchors.touch()
        self.set_clock(T0)
        self.clients = connect_devices(self.broker, [sealer.config.device_did for sealer in self.sealers])
        self.next_seq = [0] * DEVICES
        self.published: dict[bytes, tuple[int, int]] = {}  # record id -> (device index, seq)
        self.proc: subprocess.Popen | None = None

    def set_clock(self, t: int) -> None:
        """Move the driver's clock (written whole, then renamed: it never reads half a number)."""
        part = self.clock.with_suffix(".part")
        part.write_text(str(t))
        part.replace(self.clock)

    def start_gateway(self, filing_pause_s: float = 0) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                           os.environ.get("PYTHONPATH", "")]))
        args = [self.tmp / "gateway", self.tmp / "vaults", self.tmp / "registry.json", self.broker.host,
                self.broker.port, self.tmp / "gateway.password", self.clock, self.anchors, filing_pause_s]
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), *map(str, args)], env=env,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready", "the gateway driver did not start"

    def kill_gateway(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()

    def publish_phase(self, between=None) -> list:
        """Publish PER_PHASE windows per device, interleaved, at QoS 1, calling between() after each
        round of devices; the pending PUBACKs."""
        pending = []
        for _ in range(PER_PHASE):
            if between is not None:
                between()
            for index, sealer in enumerate(self.sealers):
                seq = self.next_seq[index]
                self.next_seq[index] += 1
                start = T0 + 10 * seq
                samples = vehicle_samples(random.Random(seq), start)
                raw = encode(seal_window(sealer.key, sealer.config, seq, start, samples))
                self.published[verify_message(raw, self.fleet.lookup, None).record_id] = (index, seq)
                client, topic = self.clients[index]
                pending.append(client.publish(topic, raw, qos=1))
        return pending

    def received(self) -> int:
        """Records the gateway has committed so far (read from its state file, read-only)."""
        path = self.tmp / "gateway" / "state.sqlite"
        if not path.exists():
            return 0
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM received").fetchone()[0]
        except sqlite3.OperationalError:  # the driver has not created its tables yet
            return 0
        finally:
            db.close()

    def applied_batch(self) -> int:
        """The last journal batch the gateway's state marks filed (read-only)."""
        db = sqlite3.connect(f"file:{self.tmp / 'gateway' / 'state.sqlite'}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT batch FROM journal_applied").fetchone()
        except sqlite3.OperationalError:
            row = None
        finally:
            db.close()
        return 0 if row is None else row[0]

    def unfiled_batches(self) -> int:
        """Batches journalled (so acknowledged) that the state does not mark filed yet."""
        return read_last_batch(self.tmp / "gateway" / "journal") - self.applied_batch()

    def anchored(self) -> list[tuple[int, str, int]]:
        return [(int(i), root, int(count)) for i, root, count in
                (line.split() for line in self.anchors.read_text().splitlines())]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill_gateway()
        disconnect_devices(self.clients)
        self.broker.stop()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def acked_by_broker(pending: list) -> None:
    for info in pending:
        info.wait_for_publish(WAIT_S)
        assert info.is_published()


@pytest.fixture
def world(tmp_path):
    built = World(tmp_path)
    yield built
    built.close()


def test_sigkill_mid_interval_loses_no_acknowledged_record_and_anchors_none_twice(world):
    world.start_gateway()
    # 1. Killed while it files the first phase (the devices go on publishing), the clock in the
    #    middle of interval 0.
    killed: list[int] = []
    rounds = [0]

    def kill_once_some_are_taken() -> None:
        # After 8 rounds (32 windows) wait for the gateway to take 16, then kill it: the kill lands
        # mid-stream however fast or slow the machine is; the devices go on publishing after it.
        rounds[0] += 1
        if killed or rounds[0] <= 8:
            return
        wait_until(lambda: world.received() >= DEVICES * 4, "the gateway to take some records")
        world.kill_gateway()
        killed.append(world.received())

    pending = world.publish_phase(kill_once_some_are_taken)
    acked_by_broker(pending)  # the broker took every message: they are the devices' acknowledged records
    taken_before_kill = killed[0]
    world.start_gateway()
    pending = world.publish_phase()
    acked_by_broker(pending)
    wait_until(lambda: world.received() == len(world.published), "every record of phases 1 and 2")
    world.set_clock(T0 + 60)
    wait_until(lambda: any(i == T0 // 60 for i, _, _ in world.anchored()), "interval 0's root")
    # 2. Killed as interval 1 closes: before, while or after its root is anchored (all must be safe).
    pending = world.publish_phase()
    wait_until(lambda: world.received() >= len(world.published) - DEVICES * PER_PHASE // 2, "some of phase 3")
    world.set_clock(T0 + 120)
    world.kill_gateway()
    acked_by_broker(pending)
    world.start_gateway()
    wait_until(lambda: world.received() == len(world.published), "every record of phase 3")
    world.set_clock(T0 + 180)
    state_path = world.tmp / "gateway" / "state.sqlite"

    def all_anchored() -> bool:
        db = sqlite3.connect(f"file:{state_path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM open_intervals").fetchone()[0] == 0
        finally:
            db.close()

    wait_until(all_anchored, "every interval to be anchored")
    world.kill_gateway()
    assert 0 < taken_before_kill < DEVICES * PER_PHASE  # the first kill did land mid-stream
    check_each_record_anchored_once_and_stored(world, state_path)


def test_sigkill_with_batches_acknowledged_but_not_filed_files_them_from_the_journal(world):
    """The filing thread held back (the driver's pause), so batches are journalled and acknowledged
    to the broker but not in the vaults or the state when the gateway is killed: the broker will not
    deliver them again, only the journal has them."""
    world.start_gateway(filing_pause_s=0.5)
    pending = world.publish_phase()
    wait_until(lambda: world.unfiled_batches() >= 2, "batches journalled and not yet filed")
    world.kill_gateway()
    unfiled = world.unfiled_batches()
    acked_by_broker(pending)
    assert unfiled >= 2 and world.received() < len(world.published)
    world.start_gateway()
    wait_until(lambda: world.received() == len(world.published), "every record of the phase")
    assert world.unfiled_batches() <= 0
    world.set_clock(T0 + 60)
    wait_until(lambda: any(i == T0 // 60 for i, _, _ in world.anchored()), "interval 0's root")
    pending = world.publish_phase()  # sequence numbers go on where the journal left them: none refused
    acked_by_broker(pending)
    wait_until(lambda: world.received() == len(world.published), "every record of phase 2")
    world.set_clock(T0 + 120)
    wait_until(lambda: sum(count for _, _, count in world.anchored()) >= len(world.published), "phase 2's root")
    world.kill_gateway()
    check_each_record_anchored_once_and_stored(world, world.tmp / "gateway" / "state.sqlite")


def check_each_record_anchored_once_and_stored(world: World, state_path: Path) -> None:
    """Every published record in exactly one anchored root and once in the owner's vault."""
    # Each interval anchored with one root (a repeat after a crash is the same root and count).
    roots: dict[int, tuple[str, int]] = {}
    for interval, root, count in world.anchored():
        assert roots.setdefault(interval, (root, count)) == (root, count), f"interval {interval}: two roots"
    db = sqlite3.connect(state_path)
    placed: Counter[bytes] = Counter()
    for interval, (root, count) in roots.items():
        ids = [row[0] for row in db.execute("SELECT record_id FROM received WHERE interval = ? ORDER BY pos",
                                            (interval,))]
        assert compute_records_root(ids).hex() == root and len(ids) == count
        placed.update(ids)
    db.close()
    # Every published record in exactly one anchored root, none lost, none twice.
    assert set(placed) == set(world.published) and max(placed.values()) == 1
    assert len(roots) >= 2
    # And in the owner's vault, once each, readable as the device sealed it.
    host = VaultHost(world.tmp / "vaults")
    vault = host.vault(OWNER)
    stored = vault.list("ds-car-1", 0, 2**62)
    assert sorted(stored) == sorted(world.published)
    for record_id in stored[::17]:
        _, seq = world.published[record_id]
        start = T0 + 10 * seq
        assert vault.read_owner(record_id, world.fleet.owner_key).samples == vehicle_samples(random.Random(seq), start)
    host.close()
