"""Owners' vaults: store what the gateway verified, owner and consumer reads, erasure, privacy on disk."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import struct
from pathlib import Path

import msgspec
import pytest
from telemetry_helpers import OWNER, Fleet, vehicle_samples

from cityledger.core.encoding import decoder, encode
from cityledger.offchain.telemetry import (
    RecordHeader,
    Sample,
    TelemetryError,
    TelemetryMessage,
    VaultKey,
    WrappedKey,
    compute_record_id,
    is_signed_by,
    open_record,
    unwrap_data_key,
    verify_message,
)
from cityledger.offchain.telemetry.crypto import decrypt_window
from cityledger.offchain.vaults import SqliteVaultStore, VaultError, VaultHost, load_key_file, save_key_file

_MESSAGE = decoder(TelemetryMessage)
START = 1_700_000_000


class Ingest:
    """The gateway's order of work, as the tests need it: verify, store, only then advance the sequence."""

    def __init__(self, fleet: Fleet, host: VaultHost) -> None:
        self.fleet, self.host = fleet, host
        self.last_seq: dict[str, int] = {}
        self.accepted: list[bytes] = []

    def __call__(self, raw: bytes) -> bytes:
        # The real gateway knows the sender from the MQTT topic; here it is read off the header.
        try:
            device = msgspec.msgpack.decode(raw)[0][1]
        except (msgspec.DecodeError, IndexError, TypeError, KeyError):
            device = ""
        record = verify_message(raw, self.fleet.lookup, self.last_seq.get(device))
        self.host.vault(record.owner).put_verified([record])
        self.last_seq[device] = record.stored.header.seq
        self.accepted.append(record.record_id)
        return record.record_id


class Releases:
    """A ConsentCheck for the unit tests: the (consumer, data set) pairs released now."""

    def __init__(self, *pairs: tuple[bytes, str]) -> None:
        self.pairs = set(pairs)

    def is_released(self, consumer: bytes, header: RecordHeader) -> bool:
        return (consumer, header.dataset) in self.pairs


@pytest.fixture
def fleet(tmp_path):
    (tmp_path / "devices").mkdir()
    return Fleet(VaultKey.generate(), tmp_path / "devices")


@pytest.fixture
def host(tmp_path):
    host = VaultHost(tmp_path / "vaults")
    yield host
    host.close()


def _files_bytes(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_round_trip_device_gateway_vault_owner(fleet, host):
    device, ingest = fleet.add(), Ingest(fleet, host)
    rng = random.Random(10)
    windows = [vehicle_samples(rng, START + 10 * i) for i in range(5)]
    ids = [ingest(device.seal(START + 10 * i, samples)) for i, samples in enumerate(windows)]
    vault = host.vault(OWNER)
    assert vault.list("ds-car-1", START, START + 50) == ids
    assert vault.list("ds-car-1", START + 10, START + 30) == ids[1:3]
    assert vault.list("ds-other", START, START + 50) == []
    assert [vault.read_owner(record_id, fleet.owner_key).samples for record_id in ids] == windows


def test_records_survive_reopening(fleet, tmp_path):
    device = fleet.add()
    samples = vehicle_samples(random.Random(11), START)
    first = VaultHost(tmp_path / "vaults")
    record_id = Ingest(fleet, first)(device.seal(START, samples))
    first.close()
    again = VaultHost(tmp_path / "vaults")
    assert again.vault(OWNER).read_owner(record_id, fleet.owner_key).samples == samples
    again.close()


def test_store_is_durable_by_configuration(tmp_path):
    store = SqliteVaultStore(tmp_path / "v")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync at every commit
    assert store._db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    store.close()


def test_put_is_idempotent_and_a_torn_tail_is_skipped(fleet, host):
    device = fleet.add()
    rng = random.Random(12)
    first, second = (verify_message(device.seal(START + 10 * i, vehicle_samples(rng, START + 10 * i)), fleet.lookup,
                                    i - 1 if i else None) for i in range(2))
    vault = host.vault(OWNER)
    assert vault.put_verified([first]) == 1 and vault.put_verified([first]) == 0
    # A crash between the append and the SQLite commit leaves bytes at the segment's tail that
    # nothing lists or opens; the next append goes after them.
    with open(vault.store.segment_path(1), "ab") as segment:
        segment.write(b"left by a crash")
    assert vault.put_verified([second]) == 1
    assert vault.list("ds-car-1", 0, 2**62) == [first.record_id, second.record_id]
    assert [vault.get_record(r.record_id) for r in (first, second)] == [first.stored, second.stored]


def test_delete_removes_the_record_and_zeroes_its_bytes(fleet, host):
    device = fleet.add()
    record = verify_message(device.seal(START, vehicle_samples(random.Random(18), START)), fleet.lookup, None)
    vault = host.vault(OWNER)
    vault.put_verified([record])
    assert record.blob in vault.store.segment_path(1).read_bytes()
    assert vault.store.delete(record.record_id) and not vault.store.delete(record.record_id)
    assert vault.store.get(record.record_id) is None and vault.list("ds-car-1", 0, 2**62) == []
    assert record.stored.ciphertext not in vault.store.segment_path(1).read_bytes()
    assert list(vault.store.key_blobs()) == []


@pytest.mark.parametrize("attack", ["forged", "replayed", "reordered", "unknown", "wrong_ad", "garbage"])
def test_invalid_messages_are_refused_and_nothing_is_stored(fleet, host, tmp_path, attack):
    device, ingest = fleet.add(), Ingest(fleet, host)
    rng = random.Random(13)
    first, second = device.seal(START, vehicle_samples(rng, START)), device.seal(START + 10, vehicle_samples(rng, START + 10))
    message = _MESSAGE.decode(first)
    if attack in ("replayed", "reordered"):
        ingest(first if attack == "replayed" else second)
    if attack == "forged":
        raw = encode(TelemetryMessage(message.header, message.ciphertext, message.owner_wrap, [], bytes(64)))
    elif attack == "unknown":
        (tmp_path / "strangers").mkdir()
        raw = Fleet(fleet.owner_key, tmp_path / "strangers").add().seal(START, [])
    elif attack == "wrong_ad":
        header = RecordHeader(*[getattr(message.header, name) for name in message.header.__struct_fields__[:-2]],
                              START + 20, 10)
        raw = encode(TelemetryMessage(header, message.ciphertext, message.owner_wrap, [], message.signature))
    elif attack == "garbage":
        raw = b"\x93\x01\x02"
    else:
        raw = first
    before = list(ingest.accepted)
    with pytest.raises(TelemetryError):
        ingest(raw)
    assert ingest.accepted == before
    assert host.vault(OWNER).list("ds-car-1", 0, 2**62) == before
    assert len(list(host.vault(OWNER).store.key_blobs())) == len(before)  # the owner's wrap of each


def test_vault_refuses_a_record_of_another_owner_or_with_a_wrong_id(fleet, host):
    device = fleet.add()
    record = verify_message(device.seal(START, []), fleet.lookup, None)
    with pytest.raises(VaultError) as caught:
        host.vault("city" + "cd" * 20).put_verified([record])
    assert caught.value.code == "wrong_vault"
    forged = dataclasses.replace(record, record_id=bytes(32))
    with pytest.raises(VaultError) as caught:
        host.vault(OWNER).put_verified([forged])
    assert caught.value.code == "malformed" and host.vault(OWNER).list("ds-car-1", 0, 2**62) == []


def test_consumer_gets_only_its_own_wrap_and_only_under_consent(fleet, host):
    device, ingest = fleet.add(), Ingest(fleet, host)
    insurer, city_lab = VaultKey.generate(), VaultKey.generate()
    samples = vehicle_samples(random.Random(14), START)
    record_id = ingest(device.seal(START, samples, [insurer.public, city_lab.public]))
    vault = host.vault(OWNER)
    envelope = vault.read_for_consumer(record_id, insurer.public, Releases((insurer.public, "ds-car-1")))
    assert envelope.wrap.recipient == insurer.public
    assert open_record(envelope.record, envelope.wrap, insurer) == samples
    with pytest.raises(TelemetryError):
        open_record(envelope.record, envelope.wrap, city_lab)
    with pytest.raises(VaultError) as caught:
        vault.read_for_consumer(record_id, city_lab.public, Releases((insurer.public, "ds-car-1")))
    assert caught.value.code == "no_consent"
    stranger = VaultKey.generate()
    with pytest.raises(VaultError) as caught:
        vault.read_for_consumer(record_id, stranger.public, Releases((stranger.public, "ds-car-1")))
    assert caught.value.code == "no_key"


def _erased_world(fleet, host):
    """Two data sets with consumer copies; the data keys, read by their holders before erasure."""
    ingest = Ingest(fleet, host)
    car, meter = fleet.add("ds-car-1"), fleet.add("ds-home-meter", schema="meter/1")
    consumer = VaultKey.generate()
    rng = random.Random(15)
    car_ids = [ingest(car.seal(START + 10 * i, vehicle_samples(rng, START + 10 * i), [consumer.public]))
               for i in range(4)]
    meter_ids = [ingest(meter.seal(START, [Sample(START, (123_456_789, 4_321_987))], [consumer.public]))]
    vault = host.vault(OWNER)
    data_keys = {}
    for record_id in car_ids:
        record = vault.get_record(record_id)
        blob = vault.store.get_key(record_id, fleet.owner_key.public)
        data_keys[record_id] = unwrap_data_key(WrappedKey(blob.recipient, blob.enc, blob.ct), fleet.owner_key,
                                               record.header)
    wraps = [blob for blob in vault.store.key_blobs() if blob.record_id in car_ids]
    return vault, consumer, car_ids, meter_ids, data_keys, wraps


def _assert_nothing_decrypts(vault, keys, erased_ids, data_keys, wraps):
    """Every key blob left in the store, tried with every key holder's key, opens none of the erased
    records; no file under the vault holds an erased wrap or data key."""
    for blob in vault.store.key_blobs():
        for holder in keys:
            for record_id in erased_ids:
                record = vault.get_record(record_id)
                with pytest.raises(TelemetryError):
                    data_key = unwrap_data_key(WrappedKey(blob.recipient, blob.enc, blob.ct), holder, record.header)
                    decrypt_window(data_key, record.header, record.ciphertext)
    contents = _files_bytes(vault.store.folder)
    secrets = [*data_keys.values(), *(w.enc for w in wraps), *(w.ct for w in wraps)]
    assert secrets and not [(path, s.hex()) for path, data in contents.items() for s in secrets if s in data]
    for record_id in erased_ids:
        with pytest.raises(VaultError) as caught:
            vault.read_owner(record_id, keys[0])
        assert caught.value.code == "no_key"


def test_erase_dataset_shreds_owner_and_consumer_keys(fleet, host):
    vault, consumer, car_ids, meter_ids, data_keys, wraps = _erased_world(fleet, host)
    # The check itself must be able to fail: before erasure the secrets are there to be found.
    assert any(w.ct in data for w in wraps for data in _files_bytes(vault.store.folder).values())
    erasure = vault.erase_dataset("ds-car-1")
    assert erasure.keys_destroyed == 2 * len(car_ids)
    _assert_nothing_decrypts(vault, [fleet.owner_key, consumer], car_ids, data_keys, wraps)
    assert vault.read_owner(meter_ids[0], fleet.owner_key).samples == [Sample(START, (123_456_789, 4_321_987))]
    # The ciphertext stays: records are still listed, their ids (the Merkle leaves) unchanged, and
    # the device's signature still checks, so the owner can still prove what existed.
    assert vault.list("ds-car-1", 0, 2**62) == car_ids
    device_key = fleet.registry[vault.get_record(car_ids[0]).header.device].public_key
    assert all(is_signed_by(vault.get_record(record_id), device_key) for record_id in car_ids)
    assert [compute_record_id(vault.get_record(record_id)) for record_id in car_ids] == car_ids
    other_key = fleet.registry[vault.get_record(meter_ids[0]).header.device].public_key
    assert not is_signed_by(vault.get_record(car_ids[0]), other_key)


def test_erased_keys_do_not_come_back_when_a_record_is_stored_again(fleet, host):
    device = fleet.add()
    record = verify_message(device.seal(START, vehicle_samples(random.Random(16), START)), fleet.lookup, None)
    vault = host.vault(OWNER)
    vault.put_verified([record])
    vault.erase_dataset("ds-car-1")
    assert vault.put_verified([record]) == 0
    assert list(vault.store.key_blobs()) == []


def test_erase_all_destroys_every_key_and_the_owner_key_file(fleet, host, tmp_path):
    key_file = tmp_path / "owner.key"
    save_key_file(key_file, fleet.owner_key)
    assert load_key_file(key_file).public == fleet.owner_key.public
    vault, consumer, car_ids, meter_ids, data_keys, wraps = _erased_world(fleet, host)
    erasure = vault.erase_all(key_file)
    assert erasure.dataset is None and erasure.keys_destroyed == 2 * (len(car_ids) + len(meter_ids))
    assert not key_file.exists() and list(vault.store.key_blobs()) == []
    _assert_nothing_decrypts(vault, [fleet.owner_key, consumer], car_ids + meter_ids, data_keys, wraps)


def _clear_forms(samples: list[Sample]) -> list[bytes]:
    """The ways a sample could sit in a file in clear: each value as decimal text (5 to 10 digits),
    the position as 4- and 8-byte integers both ways round, the whole sample as the device packs it
    and as msgpack. A lone 4-byte integer is not scanned for: among ~100 KB of ciphertext and random
    keys it would turn up by chance in a few runs in a hundred; the pairs and rows above cannot."""
    forms = []
    for sample in samples:
        lat, lon, speed = sample.values
        forms += [str(value).encode() for value in sample.values]
        forms += [struct.pack(fmt, lat, lon) for fmt in (">2i", "<2i", ">2q", "<2q")]
        forms += [struct.pack(">4q", sample.t_s, lat, lon, speed), encode(list(sample.values)),
                  encode([sample.t_s, list(sample.values)])]
    return forms


def _find(forms: list[bytes], contents: dict[Path, bytes]) -> list[bytes]:
    """The forms occurring in any of the files: the substrings of each form length go into a set
    once, instead of scanning the bytes once per form."""
    haystack = b"\n".join(contents.values())
    by_len: dict[int, set[bytes]] = {}
    for form in forms:
        by_len.setdefault(len(form), set()).add(form)
    found: list[bytes] = []
    for length, wanted in by_len.items():
        windows = {haystack[i:i + length] for i in range(len(haystack) - length + 1)}
        found += sorted(wanted & windows)
    return found


def test_privacy_vault_files_hold_no_sample_value_in_clear(fleet, host):
    devices, ingest = [fleet.add(f"ds-car-{i}") for i in range(2)], Ingest(fleet, host)
    rng = random.Random(17)
    produced: list[Sample] = []
    for i in range(10):
        for device in devices:
            samples = vehicle_samples(rng, START + 10 * i)
            produced.extend(samples)
            ingest(device.seal(START + 10 * i, samples, [VaultKey.generate().public]))
    folder = host.vault(OWNER).store.folder
    forms = _clear_forms(produced)
    # The scan can fail: a plaintext copy of the samples dropped in the folder is found.
    leak = folder / "leak.bin"
    leak.write_bytes(encode([[s.t_s, list(s.values)] for s in produced[:5]]) + str(produced[7].values[2]).encode())
    assert len(_find(forms, _files_bytes(folder))) >= 5
    leak.unlink()
    host.vault(OWNER).store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    contents = _files_bytes(folder)
    assert sum(len(data) for data in contents.values()) > 20 * 300  # twenty windows of ciphertext at least
    assert _find(forms, contents) == []
    # The records are all there: the scan looked at real ciphertext, not an empty vault.
    sqlite_rows = sqlite3.connect(folder / "vault.sqlite").execute("SELECT count(*) FROM records").fetchone()[0]
    assert sqlite_rows == 20


def test_host_keeps_few_vaults_open_and_reopens_them(fleet, tmp_path):
    host = VaultHost(tmp_path / "vaults", max_open=2)
    device = fleet.add()
    samples = vehicle_samples(random.Random(19), START)
    record_id = Ingest(fleet, host)(device.seal(START, samples))
    first = host.vault(OWNER)
    for other in ("city" + "01" * 20, "city" + "02" * 20):
        host.vault(other)
    with pytest.raises(sqlite3.ProgrammingError):  # closed to make room
        first.store.list("ds-car-1", 0, 2**62)
    assert host.vault(OWNER).read_owner(record_id, fleet.owner_key).samples == samples
    host.close()


def crash_rounds(tmp_path: Path, *driver_args: str) -> tuple[VaultKey, dict[int, bytes]]:
    """Runs vault_crash_driver.py three times, each killed with SIGKILL once it acknowledged more
    records; the owner's key and what was acknowledged (index -> record id)."""
    import os
    import signal
    import subprocess
    import sys

    key = VaultKey.generate()
    save_key_file(tmp_path / "owner.key", key)
    driver = Path(__file__).parent / "vault_crash_driver.py"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    acked: dict[int, bytes] = {}
    for round_no, wanted in enumerate((25, 60, 110)):
        proc = subprocess.Popen([sys.executable, str(driver), str(tmp_path / "vaults"), str(tmp_path / "owner.key"),
                                 str(len(acked)), *driver_args], env=env, stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            index, record_id = line.split()
            acked[int(index)] = bytes.fromhex(record_id)
            if len(acked) >= wanted:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert len(acked) >= wanted, f"round {round_no}: the driver stopped on its own"
    return key, acked


def assert_acked_are_stored(vault, key: VaultKey, acked: dict[int, bytes]) -> None:
    """Every acknowledged record is there and opens to exactly its samples, listed once."""
    for index, record_id in sorted(acked.items()):
        start = START + 10 * index
        assert vault.read_owner(record_id, key).samples == vehicle_samples(random.Random(index), start)
    listed = vault.list("ds-crash", 0, 2**62)
    assert set(acked.values()) <= set(listed) and len(listed) == len(set(listed))


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_record(tmp_path):
    """A storing process killed at arbitrary points: every record acknowledged before the kill is
    there and opens to exactly its samples; restarting appends after any torn tail."""
    key, acked = crash_rounds(tmp_path)
    host = VaultHost(tmp_path / "vaults")
    assert_acked_are_stored(host.vault(OWNER), key, acked)
    host.close()


def test_a_batch_with_a_stored_record_stores_the_rest_once_and_leaves_no_unindexed_copy(fleet, host):
    """The store inserts optimistically and checks for duplicates only when the primary key refuses
    one: the new records are stored once, and the bytes of the refused attempt are zeroed."""
    device = fleet.add()
    rng = random.Random(13)
    records = [verify_message(device.seal(START + 10 * i, vehicle_samples(rng, START + 10 * i)), fleet.lookup,
                              i - 1 if i else None) for i in range(3)]
    vault = host.vault(OWNER)
    assert vault.put_verified(records[:1]) == 1
    assert vault.put_verified(records) == 2 and vault.put_verified(records) == 0
    assert vault.list("ds-car-1", 0, 2**62) == sorted([r.record_id for r in records],
                                                       key=lambda rid: (vault.get_record(rid).header.window_start_s, rid))
    segment = vault.store.segment_path(1).read_bytes()
    for record in records:  # each record's bytes once in the segment: the refused attempts left zeros
        assert segment.count(record.blob) == 1
