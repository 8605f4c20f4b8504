"""State-sync snapshots: taken at an interval, restored into an empty node, checked chunk by chunk."""

from cityledger.app import abc
from cityledger.app.application import CityApp
from cityledger.core.storage import Store
from cityledger.modules.bank import Transfer, get_balance
from cityledger.node.modules import default_modules

from helpers import CHAIN_ID, make_chain


def _restore(tmp_path, snapshot, app_hash, chunks):
    fresh = CityApp(Store(tmp_path / "fresh.sqlite"), default_modules(), CHAIN_ID)
    assert fresh.offer_snapshot(snapshot, app_hash) == abc.OfferSnapshotResult.ACCEPT
    results = [fresh.apply_snapshot_chunk(i, chunk, "peer") for i, chunk in enumerate(chunks)]
    return fresh, results


def test_snapshot_round_trip(tmp_path):
    chain = make_chain(tmp_path / "a")
    chain.app.snapshot_interval = 2
    a, b = chain.accounts[:2]
    chain.block(chain.tx(a, Transfer(b.address(), 5)))
    chain.block(chain.tx(a, Transfer(b.address(), 6)))
    [snapshot] = chain.app.list_snapshots()
    assert snapshot.height == 2 and snapshot.format == 1
    chunks = [chain.app.load_snapshot_chunk(2, 1, i) for i in range(snapshot.chunks)]
    app_hash = chain.store.height_info(2).app_hash
    fresh, results = _restore(tmp_path, snapshot, app_hash, chunks)
    assert results[-1] == abc.ApplyChunkResult.ACCEPT
    assert fresh.info().last_block_height == 2 and fresh.info().last_block_app_hash == app_hash
    assert get_balance(fresh.store, b.address()) == get_balance(chain.store, b.address())
    assert fresh.store.recompute_app_hash() == app_hash


def test_invalid_tampered_chunk_and_wrong_app_hash(tmp_path):
    chain = make_chain(tmp_path / "a")
    chain.app.snapshot_interval = 1
    chain.block(chain.tx(chain.accounts[0], Transfer(chain.accounts[1].address(), 5)))
    [snapshot] = chain.app.list_snapshots()
    chunk = chain.app.load_snapshot_chunk(1, 1, 0)
    _, results = _restore(tmp_path / "x", snapshot, chain.store.height_info(1).app_hash, [chunk[:-1] + b"\x00"])
    assert results == [abc.ApplyChunkResult.RETRY]
    _, results = _restore(tmp_path / "y", snapshot, b"\x01" * 32, [chunk])
    assert results == [abc.ApplyChunkResult.REJECT_SNAPSHOT]


def test_invalid_offer_to_a_node_with_state(tmp_path):
    chain = make_chain(tmp_path / "a")
    chain.app.snapshot_interval = 1
    chain.block()
    chain.block(chain.tx(chain.accounts[0], Transfer(chain.accounts[1].address(), 5)))
    snapshot = chain.app.list_snapshots()[0]
    assert chain.app.offer_snapshot(snapshot, b"") == abc.OfferSnapshotResult.REJECT
    assert chain.app.offer_snapshot(abc.Snapshot(1, 9, 1, b"", b""), b"") == abc.OfferSnapshotResult.REJECT_FORMAT
