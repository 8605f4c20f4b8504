"""One root per interval over a sharded gateway: the fleet tree and two-level proofs (anchor.py), and the
anchoring point that takes the shards' roots (fleet.py): one anchor per interval, a late or down
shard's root in a later interval with its own number, nothing anchored twice, a crash re-sending the
same root. In process, with a clock the test moves."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from test_consent import Consents
from test_identity_fixtures import City
from cityledger.core.hashing import sha256
from cityledger.core.types import address_to_str
from cityledger.modules.consent import RegisterVaultKey
from cityledger.modules.devices import Decommission
from cityledger.offchain.telemetry import VaultKey
from cityledger.offchain.telemetry.gateway import GatewayState
from cityledger.offchain.telemetry.registry import LedgerDevices
from cityledger.offchain.telemetry.anchor import (
    EMPTY_ROOT,
    FleetProof,
    InclusionProof,
    ShardRoot,
    compute_fleet_proof,
    compute_fleet_root,
    compute_inclusion_proof,
    compute_records_root,
    compute_shard_leaf_id,
    is_included,
)
from cityledger.offchain.telemetry.fleet import FleetAnchor, FleetError
from cityledger.offchain.telemetry.shards import FleetRecords, LedgerFile, LedgerFileDevices

INTERVAL_S = 60


def _ids(tag: str, count: int) -> list[bytes]:
    return [sha256(f"{tag} {i}".encode()) for i in range(count)]


# -- the tree -----------------------------------------------------------------------------------

def test_a_record_proves_its_place_under_the_fleet_root_through_its_shard_root():
    shard0, shard1 = _ids("a", 5), _ids("b", 3)
    leaves = [ShardRoot(0, 9, compute_records_root(shard0), 5), ShardRoot(1, 9, compute_records_root(shard1), 3),
              ShardRoot(2, 9, EMPTY_ROOT, 0)]
    root = compute_fleet_root(leaves)
    for index, ids in ((0, shard0), (1, shard1)):
        for pos, record_id in enumerate(ids):
            proof = compute_fleet_proof(leaves, index, compute_inclusion_proof(ids, pos))
            assert is_included(root, record_id, proof)
            assert not is_included(root, _ids("c", 1)[0], proof)
    proof = compute_fleet_proof(leaves, 0, compute_inclusion_proof(shard0, 2))
    # The shard leaf binds shard, interval, count and root: changing any breaks the proof.
    for changed in (dataclasses.replace(proof.shard, shard=1), dataclasses.replace(proof.shard, interval=8),
                    dataclasses.replace(proof.shard, count=6), dataclasses.replace(proof.shard, root=leaves[1].root),
                    dataclasses.replace(proof.shard, count=-1)):
        assert not is_included(root, shard0[2], dataclasses.replace(proof, shard=changed))
    # A record proof made for another count than the shard root's is refused.
    short = compute_inclusion_proof(shard0[:4], 2)
    assert not is_included(root, shard0[2], dataclasses.replace(proof, record=short))
    # The shard root is not itself a record of the fleet tree, nor the fleet proof a one-level proof.
    assert not is_included(root, compute_shard_leaf_id(leaves[0]), proof.record)
    assert not is_included(leaves[0].root, shard0[2], FleetProof(proof.record, proof.shard, proof.record))


def test_single_gateway_proofs_stay_as_they_are():
    ids = _ids("single", 7)
    root = compute_records_root(ids)
    assert all(is_included(root, ids[i], compute_inclusion_proof(ids, i)) for i in range(7))
    assert not is_included(root, ids[1], compute_inclusion_proof(ids, 2))
    assert not is_included(root, ids[1], InclusionProof(1, 7, ()))


# -- the anchoring point -------------------------------------------------------------------------

class Ledger:
    """What the fleet anchors to: one root per interval, refusing a second or an older one."""

    def __init__(self) -> None:
        self.roots: dict[int, tuple[bytes, int]] = {}
        self.txs = 0
        self.failing = False

    def anchor(self, root: bytes, count: int, interval: int) -> None:
        if self.failing:
            raise OSError("ledger unreachable")
        if interval in self.roots:
            assert self.roots[interval] == (root, count), "a second root for an interval"
            return  # a repeat after a crash: done
        assert interval > max(self.roots, default=0), "an interval going back"
        self.roots[interval] = (root, count)
        self.txs += 1

    def last(self) -> int:
        return max(self.roots, default=0)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _fleet(tmp_path, ledger: Ledger, clock: Clock, shards: int = 2) -> FleetAnchor:
    return FleetAnchor(tmp_path / "fleet.sqlite", shards, INTERVAL_S, ledger.anchor, ledger.last, wait_s=30,
                       clock=clock)


def test_one_root_per_interval_over_every_shard_once_all_closed_it(tmp_path):
    ledger, clock = Ledger(), Clock(100 * INTERVAL_S + 5)
    fleet = _fleet(tmp_path, ledger, clock)
    a, b = ShardRoot(0, 100, sha256(b"a"), 4), ShardRoot(1, 100, sha256(b"b"), 6)
    fleet.hand(a)
    fleet.hand(a)  # a repeat (the shard did not hear the acknowledgement): kept once
    fleet.hand(b)
    assert fleet.tick() == []  # the clock is still in interval 100
    clock.t = 101 * INTERVAL_S + 1
    fleet.closed(0, 101)
    assert fleet.tick() == []  # shard 1 has not closed it, and the wait is not over
    fleet.closed(1, 101)
    [done] = fleet.tick()
    assert (done.interval, done.count) == (100, 10) and ledger.txs == 1
    assert ledger.roots[100] == (compute_fleet_root([a, b]), 10) and fleet.leaves(100) == [a, b]
    assert fleet.fleet_interval(1, 100) == 100 and fleet.tick() == [] and ledger.txs == 1
    with pytest.raises(FleetError, match="another root"):
        fleet.hand(dataclasses.replace(a, root=sha256(b"other")))
    for bad in (ShardRoot(2, 100, sha256(b"c"), 1), ShardRoot(0, 101, sha256(b"c"), 0)):
        with pytest.raises(FleetError, match="shard root"):
            fleet.hand(bad)


def test_a_late_shard_waits_a_bounded_time_then_its_root_goes_into_the_next_interval(tmp_path):
    ledger, clock = Ledger(), Clock(101 * INTERVAL_S + 1)
    fleet = _fleet(tmp_path, ledger, clock)
    a = ShardRoot(0, 100, sha256(b"a"), 4)
    fleet.hand(a)
    fleet.closed(0, 101)
    assert fleet.tick() == []  # shard 1 is down: the fleet waits...
    clock.t = 101 * INTERVAL_S + 30
    [done] = fleet.tick()  # ...30 s past the interval's end at most
    assert done.interval == 100 and fleet.leaves(100) == [a, ShardRoot(1, 100, EMPTY_ROOT, 0)]
    # Shard 1 comes back with its root for 100 (late) and one for 101.
    late, on_time = ShardRoot(1, 100, sha256(b"late"), 2), ShardRoot(1, 101, sha256(b"b"), 3)
    next_a = ShardRoot(0, 101, sha256(b"a2"), 5)
    for root in (late, on_time, next_a):
        fleet.hand(root)
    clock.t = 102 * INTERVAL_S + 1
    fleet.closed(0, 102)
    fleet.closed(1, 102)
    [done] = fleet.tick()
    assert done.interval == 101 and done.count == 10
    assert fleet.leaves(101) == [next_a, late, on_time]  # the late one with its own interval number
    assert ledger.roots[101] == (compute_fleet_root([next_a, late, on_time]), 10)
    fleet.hand(late)  # handed again after a restart: still in one fleet root only
    assert fleet.pending() == 0 and fleet.tick() == [] and ledger.txs == 2


def test_a_late_root_alone_is_anchored_in_the_interval_after_the_last(tmp_path):
    ledger, clock = Ledger(), Clock(105 * INTERVAL_S)
    fleet = _fleet(tmp_path, ledger, clock)
    ledger.roots[103] = (sha256(b"before"), 1)  # the ledger's last for this gateway DID (a restart, say)
    fleet.hand(ShardRoot(1, 101, sha256(b"late"), 2))
    fleet.closed(0, 105)
    fleet.closed(1, 105)
    [done] = fleet.tick()
    assert done.interval == 104 and fleet.fleet_interval(1, 101) == 104


def test_a_crash_between_placing_and_anchoring_sends_the_same_root_again(tmp_path):
    ledger, clock = Ledger(), Clock(101 * INTERVAL_S + 1)
    fleet = _fleet(tmp_path, ledger, clock)
    fleet.hand(ShardRoot(0, 100, sha256(b"a"), 4))
    fleet.hand(ShardRoot(1, 100, sha256(b"b"), 1))
    fleet.closed(0, 101)
    fleet.closed(1, 101)
    ledger.failing = True
    assert fleet.tick() == []  # placed and committed, not anchored
    fleet.close()
    ledger.failing = False
    fleet = _fleet(tmp_path, ledger, clock)
    fleet.hand(ShardRoot(1, 101, sha256(b"new"), 1))  # arrives meanwhile: not in interval 100's tree
    [done] = fleet.tick()
    assert done.interval == 100 and done.count == 5 and ledger.txs == 1
    assert [r.interval for r in fleet.roots()] == [100] and fleet.pending() == 1


def test_the_ledger_file_reader_sees_another_connection_commit(tmp_path):
    path = tmp_path / "ledger.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE state (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    reader = LedgerFile(str(path))
    version = reader.version()
    assert reader.get(b"k") is None and reader.version() == version
    writer.execute("INSERT INTO state VALUES (?, ?)", (b"k", b"v"))
    assert reader.version() != version and reader.get(b"k") == b"v"
    reader.close()
    writer.close()


def _state_with(folder, interval: int, ids: list[bytes]) -> None:
    """A gateway folder whose state.sqlite holds `ids` received in `interval` (written as the gateway does)."""
    folder.mkdir(parents=True)
    state = GatewayState(folder / "state.sqlite")
    state._db.executemany("INSERT INTO received VALUES (?, ?, ?)", [(interval, i, r) for i, r in enumerate(ids)])
    state.close()


def test_fleet_records_answer_proofs_for_the_shards_and_the_one_gateway_before(tmp_path):
    ledger, clock = Ledger(), Clock(101 * INTERVAL_S + 1)
    fleet = _fleet(tmp_path, ledger, clock)
    shard1, before = _ids("s1", 3), _ids("before", 4)
    _state_with(tmp_path / "g1", 100, shard1)
    _state_with(tmp_path / "single", 90, before)
    fleet.hand(ShardRoot(1, 100, compute_records_root(shard1), 3))
    records = FleetRecords(fleet, [tmp_path / "g0", tmp_path / "g1"], tmp_path / "single")
    assert records.find_record(shard1[2]) is None and records.inclusion_proof(shard1[2]) is None  # not placed yet
    fleet.closed(0, 101)
    fleet.closed(1, 101)
    fleet.tick()
    assert records.find_record(shard1[2]) == (100, 2)
    interval, proof = records.inclusion_proof(shard1[2])
    assert interval == 100 and isinstance(proof, FleetProof) and is_included(ledger.roots[100][0], shard1[2], proof)
    interval, proof = records.inclusion_proof(before[1])  # the one gateway's own root for interval 90
    assert interval == 90 and is_included(compute_records_root(before), before[1], proof)
    assert records.find_record(sha256(b"unknown")) is None
    records.close()


@pytest.mark.slow  # a city with offices: a few seconds
def test_a_shard_sees_devices_from_the_ledger_file_as_blocks_commit(tmp_path):
    consents = Consents(City(tmp_path))
    devices = LedgerFileDevices(str(tmp_path / "ledger.sqlite"))  # another connection, as a shard process has
    did, owner = consents.device_did, consents.owner
    assert devices(did) is None and devices(did) is None  # bound, but its owner has no vault key yet
    key = VaultKey.generate()
    consents.ledger.send([owner], [RegisterVaultKey(address_to_str(owner.address()), key.public)]).raise_for_error()
    entry = devices(did)  # the block committed: the answer kept before is dropped
    assert entry is not None and entry == LedgerDevices(consents.ledger.store)(did)
    assert entry.owner_vault_key == key.public
    consents.ledger.send([owner], [Decommission(did)]).raise_for_error()
    assert devices(did) is None
    devices.file.close()
