"""The gateway's journal: batches read back as appended, a torn tail cut off, numbers never reused,
files deleted only once every batch in them is filed; and a gateway that files what it finds there."""

from __future__ import annotations

import random

import pytest

from cityledger.offchain.telemetry import VaultKey, journal, verify_message
from cityledger.offchain.telemetry.gateway import Gateway
from cityledger.offchain.telemetry.journal import Journal, JournalError, decode_body, encode_entry, read_last_batch
from cityledger.offchain.vaults import VaultHost

from telemetry_helpers import Fleet, vehicle_samples

T0 = 1_700_000_000


@pytest.fixture
def fleet(tmp_path):
    (tmp_path / "devices").mkdir()
    return Fleet(VaultKey.generate(), tmp_path / "devices")


def _records(fleet: Fleet, count: int, first_seq: int = 0, consumers=()):
    device = fleet.add()
    out = []
    for seq in range(first_seq, first_seq + count):
        start = T0 + 10 * seq
        out.append(verify_message(device.seal(start, vehicle_samples(random.Random(seq), start), list(consumers)),
                                  fleet.lookup, None))
    return out


def _same(a, b) -> bool:
    return [(r.record_id, r.owner, r.stored, r.blob, r.owner_wrap, r.consumer_wraps) for r in a] == \
        [(r.record_id, r.owner, r.stored, r.blob, r.owner_wrap, r.consumer_wraps) for r in b]


def test_entries_read_back_as_appended_with_consumer_wraps(fleet, tmp_path):
    consumer = VaultKey.generate().public
    first, second = _records(fleet, 3), _records(fleet, 2, consumers=[consumer])
    log = Journal(tmp_path / "j", applied=0)
    assert log.append(7, first) == 1 and log.append(8, second) == 2
    log.close()
    entries = list(Journal(tmp_path / "j", applied=0).replay())
    assert [(e.batch, e.interval) for e in entries] == [(1, 7), (2, 8)]
    assert _same(entries[0].records, first) and _same(entries[1].records, second)
    assert entries[1].records[0].consumer_wraps[0].recipient == consumer
    assert [e.batch for e in Journal(tmp_path / "j", applied=1).replay()] == [2]
    assert read_last_batch(tmp_path / "j") == 2


def test_a_torn_last_entry_is_cut_off_and_its_number_reused(fleet, tmp_path):
    records = _records(fleet, 4)
    log = Journal(tmp_path / "j", applied=0)
    log.append(1, records[:2])
    log.close()
    [path] = (tmp_path / "j").glob("*.jnl")
    whole = path.stat().st_size
    with open(path, "ab") as file:  # a crash halfway through the second append
        file.write(encode_entry(2, 1, records[2:])[:-5])
    assert read_last_batch(tmp_path / "j") == 1
    log = Journal(tmp_path / "j", applied=0)
    assert path.stat().st_size == whole
    assert log.append(1, records[2:]) == 2  # the torn batch was never acknowledged: its number is free
    assert [e.batch for e in log.replay()] == [1, 2]


def test_a_body_with_bytes_past_its_records_is_refused(fleet):
    body = encode_entry(1, 1, _records(fleet, 1))[8:]
    assert decode_body(body).batch == 1
    with pytest.raises(JournalError, match="batch 1: 1 bytes past its 1 records"):
        decode_body(body + b"\x00")


def test_release_deletes_only_files_whose_batches_are_all_filed(fleet, tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "JOURNAL_SEGMENT_BYTES", 1)  # a new file for every batch
    records = _records(fleet, 4)
    log = Journal(tmp_path / "j", applied=0)
    for index, record in enumerate(records):
        log.append(index, [record])
    assert len(list((tmp_path / "j").glob("*.jnl"))) == 4
    assert log.release(2) == 2 and [e.batch for e in log.replay()] == [3, 4]
    assert log.release(4) == 1  # the file appended to stays, emptied: no wrapped key outlives its filing
    assert [path.stat().st_size for path in (tmp_path / "j").glob("*.jnl")] == [0]
    assert log.append(9, records[:1]) == 5  # numbers go on after the deleted files
    log.close()
    assert Journal(tmp_path / "j", applied=4).append(9, records[:1]) == 6


def test_a_gateway_files_what_its_journal_holds_once(fleet, tmp_path):
    """Batches journalled (acknowledged) but not filed before a crash: the next gateway on the folder
    files them into the vaults and its state, once, and its sequence checks see them."""
    records = _records(fleet, 5)
    log = Journal(tmp_path / "gw" / "journal", applied=0)
    log.append(T0 // 60, records[:3])
    log.append(T0 // 60, records[3:])
    log.close()

    def open_gateway() -> Gateway:
        return Gateway(tmp_path / "gw", VaultHost(tmp_path / "vaults"), fleet.lookup, lambda *a: None,
                       "127.0.0.1", 1, "unused", interval_s=60, clock=lambda: float(T0), verify_workers=0)

    gateway = open_gateway()
    assert gateway.replayed == 5 and gateway.state.applied_batch() == 2
    assert gateway.state.record_ids(T0 // 60) == [r.record_id for r in records]
    assert gateway.state.last_seq(records[0].stored.header.device) == 4
    vault = gateway.vaults.vault(records[0].owner)
    assert sorted(vault.list(records[0].stored.header.dataset, 0, 2**62)) == sorted(r.record_id for r in records)
    gateway.close()
    again = open_gateway()
    assert again.replayed == 0 and len(again.state.record_ids(T0 // 60)) == 5
    again.close()


def test_every_topic_bucket_belongs_to_exactly_one_shard_and_a_device_topic_to_its_bucket():
    from cityledger.offchain.telemetry.broker import (
        MAX_GATEWAYS,
        TOPIC_BUCKETS,
        device_shard,
        device_topic,
        shard_topics,
        topic_bucket,
    )

    assert shard_topics(0, 1) == ["telemetry/#"]
    for shards in (2, 3, 7):
        filters = [topic for k in range(shards) for topic in shard_topics(k, shards)]
        assert sorted(filters) == sorted(f"telemetry/{b:02x}/#" for b in range(TOPIC_BUCKETS))
    did = "did:city:car-1"
    assert device_topic(did) == f"telemetry/{topic_bucket(did):02x}/{did}"
    assert device_topic(did).startswith(shard_topics(device_shard(did, 3), 3)[topic_bucket(did) // 3][:-1])
    for shard, shards in [(2, 2), (-1, 2), (0, 0), (0, MAX_GATEWAYS + 1)]:
        with pytest.raises(ValueError, match="shard: expected"):
            shard_topics(shard, shards)
