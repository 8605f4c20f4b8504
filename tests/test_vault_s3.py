"""The S3 vault backend against a real SeaweedFS S3 server that the tests start (weed, built by
scripts/install_seaweedfs.sh): the vault behaviour tests of test_vaults.py run again here on S3,
then what only an object store can get wrong: a server restart, credentials, hostile names."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal

import pytest
from telemetry_helpers import OWNER, vehicle_samples

# The behaviour tests of the SQLite store, collected again in this module: pytest runs each with
# this module's `host` fixture, so the same assertions hold for the S3 backend. Those that look at
# SQLite's own files (segments, WAL, pragmas) or start their own SQLite host stay in test_vaults.py.
from test_vaults import (  # noqa: F401 - collected by pytest
    START,
    _files_bytes,
    assert_acked_are_stored,
    crash_rounds,
    fleet,
    test_consumer_gets_only_its_own_wrap_and_only_under_consent,
    test_erase_all_destroys_every_key_and_the_owner_key_file,
    test_erase_dataset_shreds_owner_and_consumer_keys,
    test_erased_keys_do_not_come_back_when_a_record_is_stored_again,
    test_invalid_messages_are_refused_and_nothing_is_stored,
    test_round_trip_device_gateway_vault_owner,
    test_vault_refuses_a_record_of_another_owner_or_with_a_wrong_id,
)

from cityledger.offchain.telemetry import verify_message
from cityledger.offchain.vaults import KeyBlob, PutItem, RecordMeta, VaultHost
from cityledger.offchain.vaults.backends import load_vaults_settings, open_vaults
from cityledger.offchain.vaults.s3_store import S3StoreError, S3VaultStore, make_client, open_bucket
from cityledger.offchain.vaults.seaweedfs import INSTALL_HINT, S3Credentials, SeaweedServer, find_weed

pytestmark = pytest.mark.slow


def _need_weed() -> None:
    if find_weed() is None:
        message = f"SeaweedFS's weed binary is not installed: {INSTALL_HINT}"
        print(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _need_weed()
    seaweed = SeaweedServer(tmp_path_factory.mktemp("seaweedfs"))
    seaweed.start()
    yield seaweed
    seaweed.stop()


@pytest.fixture(scope="module")
def client(server):
    return make_client(server.endpoint, server.credentials)


def s3_host(server, client, namespace: str | None = None) -> VaultHost:
    """A VaultHost on the server's bucket; each test gets its own prefix (one bucket for all).
    `folder` points the erasure tests' file scan at SeaweedFS's data folder."""
    namespace = namespace or secrets.token_hex(8)

    def open_store(name: str) -> S3VaultStore:
        store = S3VaultStore(client, server.bucket, namespace + name, on_delete=server.purge)
        store.folder = server.data_path
        return store

    return VaultHost(server.folder / "unused", open_store=open_store)


@pytest.fixture
def host(server, client):
    host = s3_host(server, client)
    yield host
    host.close()


def _record(fleet, index=0, dataset="ds-car-1"):
    device = fleet.add(dataset)
    start = START + 10 * index
    return verify_message(device.seal(start, vehicle_samples(random.Random(index), start)), fleet.lookup, None)


def test_the_bucket_is_fsynced_and_authenticated(server):
    assert server.fsync_configured()
    anonymous = make_client(server.endpoint, S3Credentials("", ""))
    with pytest.raises(S3StoreError) as caught:
        open_bucket(anonymous, server.bucket, create=False)
    assert caught.value.field == "vaults.credentials_file"


def test_a_node_own_seaweedfs_keeps_records_across_a_kill(fleet, tmp_path):
    """backend = "s3" without an endpoint: the node runs its own SeaweedFS under the vaults folder;
    killed with SIGKILL right after a put, and started again on the same files, it has the record."""
    _need_weed()
    settings = load_vaults_settings({"backend": "s3", "endpoint": ""})
    vaults = open_vaults(settings, tmp_path, tmp_path / "vaults")
    server = vaults.server
    assert server is not None and server.folder == tmp_path / "vaults" / "seaweedfs" and server.fsync_configured()
    record = _record(fleet)
    assert vaults.host.vault(OWNER).put_verified([record]) == 1
    # Killed the moment put returned, no shutdown: what put acknowledged must already be on disk.
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    vaults.close()
    assert server.process is None
    again = open_vaults(settings, tmp_path, tmp_path / "vaults")
    vault = again.host.vault(OWNER)
    assert isinstance(vault.store, S3VaultStore)
    assert vault.list("ds-car-1", 0, 2**62) == [record.record_id]
    assert vault.read_owner(record.record_id, fleet.owner_key).samples == vehicle_samples(random.Random(0), START)
    assert vault.put_verified([record]) == 0
    again.close()


def test_bad_credentials_are_refused_naming_the_setting(server, tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text(S3Credentials(server.credentials.access_key, "wrong-secret").to_json())
    creds.chmod(0o600)
    settings = load_vaults_settings({"backend": "s3", "endpoint": server.endpoint, "bucket": server.bucket,
                                     "credentials_file": str(creds)})
    with pytest.raises(S3StoreError) as caught:
        open_vaults(settings, tmp_path, tmp_path / "vaults")
    assert caught.value.field == "vaults.credentials_file" and "refused the credentials" in str(caught.value)
    creds.write_text(S3Credentials("UNKNOWNKEY", server.credentials.secret_key).to_json())
    with pytest.raises(S3StoreError, match=r"^vaults\.credentials_file: the S3 server refused"):
        open_vaults(settings, tmp_path, tmp_path / "vaults")
    # A store whose client holds bad credentials fails its first request the same way, storing nothing.
    bad = S3VaultStore(make_client(server.endpoint, S3Credentials("UNKNOWNKEY", "x")), server.bucket, "ab")
    with pytest.raises(S3StoreError, match=r"^vaults\.credentials_file: "):
        bad.get(bytes(32))


def test_configured_node_vaults_on_the_server(server, fleet, tmp_path):
    creds = tmp_path / "creds.json"
    creds.write_text(server.credentials.to_json())
    creds.chmod(0o600)
    settings = load_vaults_settings({"backend": "s3", "endpoint": server.endpoint, "bucket": server.bucket,
                                     "credentials_file": "creds.json"})
    vaults = open_vaults(settings, tmp_path, tmp_path / "vaults")
    record = _record(fleet, 3)
    vault = vaults.host.vault(OWNER)
    assert isinstance(vault.store, S3VaultStore) and vault.put_verified([record]) in (0, 1)
    assert vault.get_record(record.record_id) == record.stored
    vaults.close()
    missing = load_vaults_settings({"backend": "s3", "endpoint": server.endpoint, "bucket": "no-such-bucket-here",
                                    "credentials_file": "creds.json"})
    with pytest.raises(S3StoreError, match=r"^vaults\.bucket: bucket 'no-such-bucket-here' does not exist"):
        open_vaults(missing, tmp_path, tmp_path / "vaults")


def test_versioned_bucket_is_refused(server, client):
    client.create_bucket(Bucket="versioned-vaults")
    client.put_bucket_versioning(Bucket="versioned-vaults", VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(S3StoreError, match=r"^vaults\.bucket: bucket 'versioned-vaults' has versioning Enabled"):
        open_bucket(client, "versioned-vaults", create=False)


HOSTILE_DATASETS = ["..", "../..", "../../buckets/other", "/", "a/b", "%2e%2e", "\x00", "ds\n", " ", "é" * 40,
                    "x" * 5000, "?versionId=1", "*", "ds-car-1/../ds-car-2"]


def test_hostile_names_and_values_stay_inside_the_prefix(server, client):
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    other = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    rid = lambda i: i.to_bytes(32, "big")  # noqa: E731
    recipient = bytes(range(32))
    blobs = {}
    for i, dataset in enumerate(HOSTILE_DATASETS):
        blob = bytes([i]) * (i + 1) + b"\x00/../\xff"
        window = [-(2**63), 2**63 - 1, 0, -1][i % 4]
        assert store.put(rid(i), blob, RecordMeta(dataset, window), [KeyBlob(rid(i), recipient, b"\x00" * 32, b"/.." * 9)])
        blobs[i] = (dataset, window, blob)
    for i, (dataset, window, blob) in blobs.items():
        assert store.get(rid(i)) == blob
        assert store.list(dataset, -(2**70), 2**70) == [rid(i)]
        assert store.list(dataset, window + 1, 2**70) == []
        assert store.get_key(rid(i), recipient) == KeyBlob(rid(i), recipient, b"\x00" * 32, b"/.." * 9)
    # Every object is under the store's prefix: no name climbed out of it.
    names = [entry["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=server.bucket)
             for entry in page.get("Contents", []) if store.prefix in entry["Key"] or ".." in entry["Key"]]
    assert names and all(name.startswith(store.prefix + "/") for name in names)
    assert other.list("..", -(2**70), 2**70) == [] and other.get(rid(0)) is None
    for bad_id in (b"", b"\x00" * 31, b"/" * 33):
        assert store.get(bad_id) is None and store.get_key(bad_id, recipient) is None and not store.delete(bad_id)
    assert store.get_key(rid(0), b"\x00" * 200) is None
    assert store.destroy_keys("..") == 1 and store.get_key(rid(0), recipient) is None
    assert store.get_key(rid(1), recipient) is not None  # "../.." is another data set
    assert store.delete(rid(2)) and store.get(rid(2)) is None and store.list(blobs[2][0], -(2**70), 2**70) == []


def test_put_many_is_idempotent_within_and_across_batches(server, client, fleet):
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    records = [_record(fleet, i) for i in range(3)]
    items = [PutItem(r.record_id, r.blob, RecordMeta(r.stored.header.dataset, r.stored.header.window_start_s),
                     [KeyBlob(r.record_id, r.owner_wrap.recipient, r.owner_wrap.enc, r.owner_wrap.ct)]) for r in records]
    assert store.put_many(items[:2] + items[:1]) == 2
    assert store.put_many(items) == 1 and store.put_many(items) == 0
    assert sorted(store.list("ds-car-1", 0, 2**62)) == sorted(r.record_id for r in records)
    assert len(list(store.key_blobs())) == 3


def test_deleted_record_bytes_leave_the_volume_files(server, client, fleet):
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    record = _record(fleet, 7)
    store.put(record.record_id, record.blob, RecordMeta("ds-car-1", record.stored.header.window_start_s), [])
    assert any(record.stored.ciphertext in data for data in _files_bytes(server.data_path).values())
    assert store.delete(record.record_id) and not store.delete(record.record_id)
    assert store.get(record.record_id) is None and store.list("ds-car-1", 0, 2**62) == []
    assert not any(record.stored.ciphertext in data for data in _files_bytes(server.data_path).values())


def _objects(client, bucket: str, prefix: str) -> list[str]:
    return [entry["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
            for entry in page.get("Contents", [])]


def _random_item(n: int, window: int, dataset: str = "ds") -> PutItem:
    rid = secrets.token_bytes(32)
    recipients = (bytes([n % 256]) * 32, bytes(range(32)))
    keys = [KeyBlob(rid, who, secrets.token_bytes(32), secrets.token_bytes(48)) for who in recipients]
    return PutItem(rid, secrets.token_bytes(300), RecordMeta(dataset, window), keys)


def test_a_batch_is_two_objects_and_a_stored_record_is_never_stored_again(server, client):
    """put_many writes one batch object and one keys object per data set, whatever the record count;
    a later batch whose windows overlap stored batches skips the stored records (their erased keys
    stay erased) and stores the new ones."""
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    first = [_random_item(i, 10 * i) for i in range(50)]
    assert store.put_many(first) == 50
    names = _objects(client, server.bucket, store.prefix)
    assert len(names) == 2 and sum("/b/" in n for n in names) == 1 and sum("/k/" in n for n in names) == 1
    second = [_random_item(i, 10 * i + 5, "ds" if i % 2 else "ds-2") for i in range(50)]
    assert store.put_many(second) == 50 and len(_objects(client, server.bucket, store.prefix)) == 6
    assert store.destroy_keys("ds") == 2 * 75
    again = S3VaultStore(client, server.bucket, store.prefix, on_delete=server.purge)  # nothing cached
    fresh = _random_item(99, 333)
    assert again.put_many([first[0], second[1], first[49], fresh, second[0]]) == 1
    assert again.get_key(first[49].record_id, first[49].keys[0].recipient) is None
    assert again.get_key(fresh.record_id, fresh.keys[1].recipient) == fresh.keys[1]
    assert len(again.list("ds", 0, 2**62)) == 76 and again.list("ds-2", 0, 2**62) == [i.record_id for i in second[::2]]


def test_deleting_a_record_rewrites_its_batch_and_purges_the_old_bytes(server, client):
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    items = [_random_item(i, 10 * i) for i in range(3)]
    store.put_many(items)
    before = _objects(client, server.bucket, store.prefix)
    contents = b"".join(_files_bytes(server.data_path).values())
    secrets_of = lambda it: [it.blob, *(k.enc for k in it.keys), *(k.ct for k in it.keys)]  # noqa: E731
    assert all(secret in contents for it in items for secret in secrets_of(it))  # the scan can find them
    assert store.delete(items[1].record_id)
    after = _objects(client, server.bucket, store.prefix)
    assert len(after) == 2 and not set(after) & set(before)
    contents = b"".join(_files_bytes(server.data_path).values())
    assert not [secret for secret in secrets_of(items[1]) if secret in contents]
    assert all(secret in contents for it in (items[0], items[2]) for secret in secrets_of(it))
    assert [store.get(it.record_id) for it in items] == [items[0].blob, None, items[2].blob]
    assert store.get_key(items[2].record_id, items[2].keys[0].recipient) == items[2].keys[0]


def test_a_store_whose_batch_another_process_rewrote_finds_the_record_again(server, client):
    """Batches are never overwritten: a store holding a stale index (another vault-service process
    deleted a record of that batch) finds its records in the new batch."""
    prefix = secrets.token_hex(8)
    reader, writer = (S3VaultStore(client, server.bucket, prefix, on_delete=server.purge) for _ in range(2))
    items = [_random_item(i, 10 * i) for i in range(3)]
    writer.put_many(items)
    assert reader.list("ds", 0, 2**62) == [it.record_id for it in items]  # reader caches the old batch
    assert writer.delete(items[0].record_id)
    assert reader.get(items[2].record_id) == items[2].blob
    assert reader.get_key(items[1].record_id, items[1].keys[1].recipient) == items[1].keys[1]
    assert reader.get(items[0].record_id) is None and reader.list("ds", 0, 2**62) == [it.record_id for it in items[1:]]


def test_sigkill_of_the_storing_process_and_of_the_server_loses_no_acknowledged_record(tmp_path):
    """The SQLite crash test on S3: the storing process killed at arbitrary points, then the server
    killed with SIGKILL and started again on its files: every acknowledged record is there, once."""
    _need_weed()
    seaweed = SeaweedServer(tmp_path / "seaweedfs")
    seaweed.start()
    try:
        key, acked = crash_rounds(tmp_path, str(seaweed.folder))
        os.killpg(seaweed.process.pid, signal.SIGKILL)
        seaweed.process.wait()
        seaweed.process = None
        seaweed.start()
        client = make_client(seaweed.endpoint, seaweed.credentials)
        host = VaultHost(tmp_path / "unused", open_store=lambda name: S3VaultStore(client, seaweed.bucket, name))
        assert_acked_are_stored(host.vault(OWNER), key, acked)
    finally:
        seaweed.stop()


def test_bench_vaults_runs_both_backends_on_the_same_records(capsys):
    """`cityledger bench vaults --json`, shrunk: its last line is the JSON the docs record."""
    _need_weed()
    from cityledger.tools.bench_vaults import main

    assert main(["--records", "12", "--batch", "5", "--rounds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("sqlite_put_per_s", "s3_put_per_s", "sqlite_get_per_s", "s3_get_per_s",
                 "sqlite_put_cpu_us", "s3_put_cpu_us"):
        assert result[name] > 0, name
    assert result["put_ratio"] == pytest.approx(result["s3_put_per_s"] / result["sqlite_put_per_s"], rel=0.01, abs=0.001)
    assert result["records"] == 12 and result["batch"] == 5


def test_large_records_split_batches_and_every_needle_is_purged(server, client):
    """Records past MAX_BATCH_OBJECT_BYTES go in batches of their own; a record larger than one of
    SeaweedFS's 4 MiB chunks is two needles, and deleting it purges both."""
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    big, medium = _random_item(1, 10), _random_item(2, 20)
    big = PutItem(big.record_id, secrets.token_bytes(5_000_000), big.meta, big.keys)
    medium = PutItem(medium.record_id, secrets.token_bytes(3_000_000), medium.meta, medium.keys)
    assert store.put_many([big, medium]) == 2
    assert sum("/b/" in name for name in _objects(client, server.bucket, store.prefix)) == 2
    assert S3VaultStore(client, server.bucket, store.prefix).get(big.record_id) == big.blob
    probes = [big.blob[100:164], big.blob[4_500_000:4_500_064]]  # in the first and in the second needle
    assert all(probe in b"".join(_files_bytes(server.data_path).values()) for probe in probes)
    assert store.delete(big.record_id)
    contents = b"".join(_files_bytes(server.data_path).values())
    assert not [probe for probe in probes if probe in contents] and medium.blob[:64] in contents


def test_a_cache_smaller_than_the_vault_still_finds_every_record(server, client, monkeypatch):
    """With room for three index entries, every record is still found by id (a scan whose fetched
    batches evict each other) and by window."""
    from cityledger.offchain.vaults import s3_store

    monkeypatch.setattr(s3_store, "MAX_CACHED_INDEX_RECORDS", 3)
    store = S3VaultStore(client, server.bucket, secrets.token_hex(8), on_delete=server.purge)
    items = [_random_item(i, 10 * i) for i in range(40)]
    for start in range(0, 40, 2):
        assert store.put_many(items[start:start + 2]) == 2
    fresh = S3VaultStore(client, server.bucket, store.prefix, on_delete=server.purge)
    assert [fresh.get(it.record_id) for it in items[::7]] == [it.blob for it in items[::7]]
    assert fresh._cached <= 3 and fresh.list("ds", 0, 2**62) == [it.record_id for it in items]
    assert fresh.get_key(items[0].record_id, items[0].keys[1].recipient) == items[0].keys[1]
