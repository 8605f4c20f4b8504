"""The VaultStore contract, run on both backends: the embedded SQLite store and the S3 store on a real
SeaweedFS (started by test_vault_s3's fixtures). What one backend answers, the other answers too."""

from __future__ import annotations

import random
import re
import secrets

import pytest

# The S3 server and client fixtures, module-scoped: a SeaweedFS is started only for the s3 cases.
from test_vault_s3 import client, server  # noqa: F401 - fixtures

from cityledger.offchain.vaults import KeyBlob, PutItem, RecordMeta, SqliteVaultStore
from cityledger.offchain.vaults.s3_store import MAX_BATCH_SPAN_S, S3VaultStore

OWNER_KEY, CONSUMER_KEY = bytes(range(32)), bytes(range(32, 64))


@pytest.fixture(params=["sqlite", pytest.param("s3", marks=pytest.mark.slow)])
def opener(request, tmp_path):
    """A function giving a store on one folder or prefix: called again, a fresh instance on the same data
    (a restarted process, nothing cached)."""
    opened = []
    if request.param == "sqlite":
        def open_store():
            opened.append(SqliteVaultStore(tmp_path / "vault"))
            return opened[-1]
    else:
        seaweed, s3 = request.getfixturevalue("server"), request.getfixturevalue("client")
        prefix = secrets.token_hex(8)

        def open_store():
            opened.append(S3VaultStore(s3, seaweed.bucket, prefix, on_delete=seaweed.purge))
            return opened[-1]
    yield open_store
    for store in opened:
        store.close()


def item(n: int, window: int, dataset: str = "ds-a", consumer: bool = True) -> PutItem:
    rid = (1000 + n).to_bytes(32, "big")
    keys = [KeyBlob(rid, OWNER_KEY, b"e%d" % n, b"owner-ct-%d" % n)]
    if consumer:
        keys.append(KeyBlob(rid, CONSUMER_KEY, b"f%d" % n, b"consumer-ct-%d" % n))
    return PutItem(rid, b"blob-%d-" % n + bytes([n % 256]) * (n % 7), RecordMeta(dataset, window), keys)


def test_put_get_list_and_idempotence(opener):
    store = opener()
    items = [item(i, 100 - 10 * i) for i in range(5)]  # given newest first: listed oldest first
    assert store.put_many(items[:3] + items[:1]) == 3
    assert store.put_many(items) == 2 and store.put_many(items) == 0
    assert not store.put(items[0].record_id, items[0].blob, items[0].meta, items[0].keys)
    assert store.put_many([]) == 0
    assert store.list("ds-a", 0, 1000) == [it.record_id for it in reversed(items)]
    assert store.list("ds-a", 70, 90) == [items[3].record_id, items[2].record_id]
    assert store.list("ds-a", 0, 1000, limit=2) == [items[4].record_id, items[3].record_id]
    assert store.list("ds-b", 0, 1000) == [] and store.list("ds-a", 101, 1000) == [] and store.list("ds-a", 5, 5) == []
    for it in items:
        assert store.get(it.record_id) == it.blob
        assert store.get_key(it.record_id, CONSUMER_KEY) == it.keys[1]
    assert store.get(bytes(32)) is None and store.get(b"short") is None
    assert store.get_key(items[0].record_id, bytes(32)) is None and store.get_key(bytes(32), OWNER_KEY) is None
    assert list(store.key_blobs()) == sorted((k for it in items for k in it.keys), key=lambda k: (k.record_id, k.recipient))
    with pytest.raises(ValueError, match="^limit: "):
        store.list("ds-a", 0, 1, limit=0)


def test_a_fresh_instance_finds_everything_by_id_and_by_window(opener):
    """No cache: records spread over windows wider than one S3 batch spans, in several data sets."""
    store = opener()
    items = [item(i, 1_000_000 + (MAX_BATCH_SPAN_S // 3) * i, f"ds-{i % 2}") for i in range(12)]
    assert store.put_many(items) == 12
    again = opener()
    middle = items[5]
    assert again.get(middle.record_id) == middle.blob  # by id alone, first
    assert again.get_key(items[8].record_id, OWNER_KEY) == items[8].keys[0]
    for dataset in ("ds-0", "ds-1"):
        mine = [it for it in items if it.meta.dataset == dataset]
        assert again.list(dataset, -(2**70), 2**70) == [it.record_id for it in mine]
        assert again.list(dataset, mine[2].meta.window_start_s, mine[4].meta.window_start_s) == \
            [mine[2].record_id, mine[3].record_id]
        assert opener().list(dataset, mine[1].meta.window_start_s + 1, 2**70, limit=1) == [mine[2].record_id]
    assert again.put_many(items) == 0


def test_delete_leaves_the_batch_s_other_records(opener):
    store = opener()
    items = [item(i, 10 * i) for i in range(4)]
    store.put_many(items)
    assert store.delete(items[1].record_id) and not store.delete(items[1].record_id)
    assert not store.delete(bytes(32))
    for fresh in (store, opener()):
        assert fresh.get(items[1].record_id) is None and fresh.get_key(items[1].record_id, OWNER_KEY) is None
        assert fresh.list("ds-a", 0, 100) == [items[i].record_id for i in (0, 2, 3)]
        assert [fresh.get(items[i].record_id) for i in (0, 2, 3)] == [items[i].blob for i in (0, 2, 3)]
        assert fresh.get_key(items[3].record_id, CONSUMER_KEY) == items[3].keys[1]
        assert {k.record_id for k in fresh.key_blobs()} == {items[i].record_id for i in (0, 2, 3)}
    for it in items[:1] + items[2:]:
        assert store.delete(it.record_id)
    assert store.list("ds-a", 0, 100) == [] and list(store.key_blobs()) == []
    assert store.put_many(items[1:2]) == 1  # deleted: stored anew


def test_destroy_keys_by_data_set_then_all(opener):
    store = opener()
    cars = [item(i, 10 * i, "ds-car") for i in range(3)]
    meters = [item(10 + i, 10 * i, "ds-meter", consumer=False) for i in range(2)]
    bare = PutItem((99).to_bytes(32, "big"), b"no keys", RecordMeta("ds-car", 5), [])
    assert store.put_many(cars + meters + [bare]) == 6
    assert store.destroy_keys("ds-car") == 6 and store.destroy_keys("ds-car") == 0
    assert all(store.get_key(it.record_id, who) is None for it in cars for who in (OWNER_KEY, CONSUMER_KEY))
    assert store.get_key(meters[0].record_id, OWNER_KEY) == meters[0].keys[0]
    # Erasure destroys keys only: the records stay listed and readable as ciphertext.
    assert store.list("ds-car", 0, 100) == [cars[0].record_id, bare.record_id, cars[1].record_id, cars[2].record_id]
    assert store.get(cars[2].record_id) == cars[2].blob and store.get(bare.record_id) == b"no keys"
    assert store.put_many(cars) == 0 and opener().get_key(cars[0].record_id, OWNER_KEY) is None
    assert store.destroy_keys(None) == 2 and list(store.key_blobs()) == [] and list(opener().key_blobs()) == []


def test_malformed_items_are_refused_and_nothing_is_stored(opener):
    store = opener()
    good = item(1, 0)
    for bad, field in ((PutItem(b"short", b"x", RecordMeta("ds-a", 0), []), "items[1].record_id"),
                       (PutItem(bytes(32), b"x", RecordMeta("ds-a", 0), good.keys), "items[1].keys")):
        with pytest.raises(ValueError, match="^" + re.escape(field) + ": "):
            store.put_many([good, bad])
    assert store.list("ds-a", -(2**70), 2**70) == [] and list(store.key_blobs()) == [] and store.get(good.record_id) is None


def test_the_whole_64_bit_window_range(opener):
    store = opener()
    low, zero, high = item(1, -(2**63)), item(2, 0), item(3, 2**63 - 1)
    assert store.put_many([high, zero, low]) == 3
    assert store.list("ds-a", -(2**70), 2**70) == [low.record_id, zero.record_id, high.record_id]
    assert store.list("ds-a", 2**63 - 1, 2**70) == [high.record_id]
    assert store.list("ds-a", -(2**70), -(2**63) + 1) == [low.record_id]
    assert store.list("ds-a", 2**63, 2**70) == [] and store.list("ds-a", -(2**70), -(2**63)) == []
    with pytest.raises(ValueError, match=r"^items\[1\]\.meta\.window_start_s: "):
        store.put_many([item(4, 0), item(5, 2**63)])
    assert store.list("ds-a", -(2**70), 2**70) == [low.record_id, zero.record_id, high.record_id]


def test_list_matches_a_model_over_overlapping_batches(opener):
    """Batches whose windows overlap and arrive out of order; every range and limit answers what a
    sorted list of everything stored answers."""
    rng = random.Random(7)
    store, stored = opener(), []
    for batch_no in range(40):  # more batches than one chunk of index fetches (S3_WORKERS)
        batch = [item(100 * batch_no + i, rng.randrange(-3 * MAX_BATCH_SPAN_S, 3 * MAX_BATCH_SPAN_S)) for i in range(3)]
        assert store.put_many(batch) == 3
        stored += batch
    model = [it.record_id for it in sorted(stored, key=lambda it: (it.meta.window_start_s, it.record_id))]
    windows = {it.record_id: it.meta.window_start_s for it in stored}
    fresh = opener()
    for _ in range(20):
        start = rng.randrange(-4 * MAX_BATCH_SPAN_S, 4 * MAX_BATCH_SPAN_S)
        end, limit = start + rng.randrange(1, 8 * MAX_BATCH_SPAN_S), rng.choice([1, 3, 20, 100])
        expected = [rid for rid in model if start <= windows[rid] < end][:limit]
        assert fresh.list("ds-a", start, end, limit) == expected == store.list("ds-a", start, end, limit)
