"""Privacy over the real Mosquitto: 100 simulated vehicles for a (compressed) day, each owned by its
own resident, publish through the broker to the gateway, which files them in the owners' vaults and
anchors one root per interval on a ledger. Neither the ledger's files (state and blocks), nor the
traffic to and from the broker (every byte either way, caught by a relay in front of it), nor the
broker's own files (persistence, log), nor the gateway's or the vault host's files hold a coordinate
or a speed the simulator produced, in any of the forms below. After erasure no file on those hosts
holds an erased record's wrapped key or data key, and no key left opens an erased record."""

from __future__ import annotations

import random
import socket
import struct
import threading
from array import array
from operator import methodcaller
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from cityledger.core.encoding import encode
from cityledger.core.keys import SCHEME_ED25519, PrivateKey
from cityledger.modules.consent import GATEWAY_TYPE
from cityledger.offchain.telemetry import (
    DeviceConfig,
    DeviceEntry,
    Sample,
    TelemetryError,
    VaultKey,
    WrappedKey,
    seal_window,
    unwrap_data_key,
)
from cityledger.offchain.telemetry.broker import Broker, find_binary
from cityledger.offchain.telemetry.crypto import decrypt_window
from cityledger.offchain.telemetry.gateway import Gateway
from cityledger.offchain.vaults import VaultError, VaultHost, save_key_file
from cityledger.sdk.telemetry import gateway_anchor
from test_identity_fixtures import City
from test_sdk_telemetry import LedgerClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 30.0  # upper bound on every wait; nothing asserts how long anything took
VEHICLES = 100
TRIPS = 12  # windows per vehicle: one 10 s window in every two hours of the day (the compressed day)
DAY = 1_800_000_000 - 1_800_000_000 % 86_400  # midnight UTC
INTERVAL_S = 3_600
INSURED = 10  # the first vehicles also seal for an insurer that has their owners' consent
ERASED_DATASETS = range(0, 40)  # owners that erase their car's data set
ERASED_OWNERS = range(40, 50)  # owners that erase their whole vault and their key


def simulate_day(rng: random.Random) -> list[tuple[int, list[Sample]]]:
    """A vehicle's day in Tokyo: a window every two hours, 1 Hz positions (1e-7 degrees, 9 and 10 digits)
    on a random walk and speeds of 36 to 144 km/h in cm/s."""
    lat, lon = rng.randrange(355_000_000, 358_000_000), rng.randrange(1_395_000_000, 1_399_000_000)
    windows = []
    for trip in range(TRIPS):
        start = DAY + trip * 7_200 + 10 * rng.randrange(0, 600)
        samples = []
        for second in range(10):
            lat += rng.randrange(-4_000, 4_000)
            lon += rng.randrange(-4_000, 4_000)
            samples.append(Sample(start + second, (lat, lon, rng.randrange(1_000, 4_000))))
        windows.append((start, samples))
    return windows


def clear_forms(windows: list[list[Sample]]) -> set[bytes]:
    """The ways the samples could sit in a file or on the wire in clear, each at least 8 bytes: each
    coordinate as decimal text (1e-7 degrees) and as degrees ("35.6812345", a float's repr, float64
    both byte orders; a repr shorter than 8 characters is left out); the position as 4- and 8-byte
    integer pairs and float32 pairs; the speed as float64 m/s and, with the speed of the next
    second, as text pairs (a lone 3-4 digit speed is too short to scan for: any file holds such
    digits); each sample as the device packs it, as integer rows, and in the project's encoding. A form with fewer than 5 non-zero bytes (the
    float64 of a round speed such as 12.0 m/s) is left out: files are full of such bytes."""
    forms: set[bytes] = set()
    for samples in windows:
        for index, sample in enumerate(samples):
            lat, lon, speed = sample.values
            for value in (lat, lon):
                forms |= {str(value).encode(), f"{value / 1e7:.7f}".encode(), repr(value / 1e7).encode(),
                          struct.pack(">d", value / 1e7), struct.pack("<d", value / 1e7)}
            forms |= {struct.pack(fmt, lat, lon) for fmt in (">2i", "<2i", ">2q", "<2q")}
            forms |= {struct.pack(fmt, lat / 1e7, lon / 1e7) for fmt in (">2f", "<2f")}
            forms |= {struct.pack(">d", speed / 100), struct.pack("<d", speed / 100)}
            forms |= {struct.pack(">4q", sample.t_s, lat, lon, speed), struct.pack("<3q", lat, lon, speed),
                      struct.pack(">3i", lat, lon, speed), encode(list(sample.values))}
            if index + 1 < len(samples):
                following = samples[index + 1].values[2]
                forms |= {f"{speed},{following}".encode(), f"{speed}, {following}".encode()}
    return {form for form in forms if len(form) >= 8 and len(form) - form.count(0) >= 5}


def find_forms(forms: set[bytes], haystacks: list[bytes]) -> set[bytes]:
    """The forms that occur in any haystack. Each form is keyed by 8 of its bytes (its head, middle
    or tail, whichever has the fewest zeros); every 8-byte window of a haystack (at each of the 8
    alignments, as integers, filtered in C) is looked up among the keys, and a form whose key turns
    up is confirmed by a search for the whole form."""
    by_key: dict[int, list[bytes]] = {}
    zeros = methodcaller("count", 0)
    for form in forms:
        middle = len(form) // 2 - 4
        key = min(form[:8], form[middle:middle + 8], form[-8:], key=zeros)
        by_key.setdefault(int.from_bytes(key, "little"), []).append(form)
    keys = set(by_key)
    found: set[bytes] = set()
    for data in haystacks:
        hits: set[int] = set()
        for shift in range(8):
            usable = (len(data) - shift) // 8 * 8
            hits.update(filter(keys.__contains__, array("Q", data[shift:shift + usable])))
        found |= {form for hit in hits for form in by_key[hit] if form in data}
    return found


def files_bytes(*folders: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for folder in folders for path in sorted(folder.rglob("*")) if path.is_file()}


class Relay:
    """A TCP relay in front of the broker that keeps every byte either way: the traffic capture."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.captured: list[bytes] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65_536):
                with self.lock:
                    self.captured.append(data)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def traffic(self) -> bytes:
        with self.lock:
            return b"".join(self.captured)

    def close(self) -> None:
        self.server.close()


class Day:
    """The city for one day: broker behind a relay, gateway, owners' vaults, ledger, 100 vehicles."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.city = City(tmp / "ledger")
        gateway_office = self.city.office("gateway", 0x81)
        assert self.city.accredit(gateway_office.did, GATEWAY_TYPE) == "executed"
        self.client = LedgerClient(self.city.ledger)
        anchor = gateway_anchor(self.client, self.city.ledger.app.chain_id, gateway_office.keys, gateway_office.did)
        self.gateway_did = gateway_office.did
        self.broker = Broker(tmp / "broker")
        self.insurer = VaultKey.generate()
        self.owner_keys = [VaultKey.generate() for _ in range(VEHICLES)]
        self.registry: dict[str, DeviceEntry] = {}
        self.vehicles = []
        for index, owner_key in enumerate(self.owner_keys):
            key = PrivateKey.generate(SCHEME_ED25519)
            did = f"did:city:car{index:03d}"
            self.registry[did] = DeviceEntry(did, key.public_key, f"resident-{index:03d}", owner_key.public)
            self.vehicles.append((key, DeviceConfig(did, owner_key.public, f"ds-car-{index:03d}", "vehicle/1"),
                                  self.broker.add_device(did)))
        self.broker.start()  # after the devices are added: one configuration, no reload per device
        self.relay = Relay(self.broker.port)
        self.now = [float(DAY)]
        self.vaults = VaultHost(tmp / "vaults")
        self.gateway = Gateway(tmp / "gateway", self.vaults, self.registry.get, anchor, "127.0.0.1", self.relay.port,
                               self.broker.gateway_password(), interval_s=INTERVAL_S, clock=lambda: self.now[0])
        self.gateway.start()

    def drive(self, index: int, windows: list[tuple[int, list[Sample]]]) -> None:
        """One vehicle's day: connect through the relay, publish every window at QoS 1, disconnect."""
        key, config, creds = self.vehicles[index]
        consumers = [self.insurer.public] if index < INSURED else []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=creds.username)
        client.username_pw_set(creds.username, creds.password)
        client.connect("127.0.0.1", self.relay.port)
        client.loop_start()
        infos = [client.publish(creds.topic, encode(seal_window(key, config, seq, start, samples, consumers)), qos=1)
                 for seq, (start, samples) in enumerate(windows)]
        for info in infos:
            info.wait_for_publish(WAIT_S)
            assert info.is_published()
        client.disconnect()
        client.loop_stop()

    def close(self) -> None:
        self.gateway.close()
        self.broker.stop()
        self.relay.close()
        self.vaults.close()


@pytest.fixture
def day(tmp_path):
    built = Day(tmp_path)
    yield built
    built.close()


def test_a_day_of_100_vehicles_leaves_no_position_or_speed_in_clear_and_erasure_leaves_nothing_to_open(day, tmp_path):
    rng = random.Random(2026)
    days = [simulate_day(rng) for _ in range(VEHICLES)]
    for index, windows in enumerate(days):
        day.now[0] = float(DAY + 3_600 * (index * TRIPS // VEHICLES))  # the gateway's clock goes through the day
        day.drive(index, windows)
    total = VEHICLES * TRIPS
    assert day.gateway.wait_processed(total, WAIT_S) and day.gateway.stored == total
    day.now[0] = float(DAY + 86_400)
    deadline_rounds = int(WAIT_S / 0.05)
    for _ in range(deadline_rounds):
        if sum(r.count for r in day.gateway.roots() if r.anchored) == total:
            break
        threading.Event().wait(0.05)
    anchored = [r for r in day.gateway.roots() if r.anchored]
    assert sum(r.count for r in anchored) == total and len(anchored) == day.client.sent  # one tx per interval
    held = day.city.ledger.query("/consent/gateway_roots", gateway=day.gateway_did, after="0")["items"]
    assert {item["interval"] for item in held} == {r.interval for r in anchored}

    forms = clear_forms([samples for windows in days for _, samples in windows])
    traffic = day.relay.traffic()
    assert len(traffic) > total * 500  # every message crossed the relay twice: in and out of the broker
    day.gateway.stop()
    day.broker.stop()  # it saves its persistence file on the way
    hosts = [tmp_path / "ledger", tmp_path / "broker", tmp_path / "gateway", tmp_path / "vaults"]
    # The scan can fail: a window's samples leaked in the forms a careless program might use are found.
    leak = [encode([list(s.values) for s in days[7][3][1]]), repr(days[9][0][1][4].values[0] / 1e7).encode(),
            struct.pack("<2f", *(v / 1e7 for v in days[3][5][1][2].values[:2])),
            ", ".join(str(s.values[2]) for s in days[5][1][1]).encode()]
    assert len(find_forms(forms, [b"..." + b"|".join(leak) + b"..."])) >= 13
    found = find_forms(forms, [traffic, *files_bytes(*hosts).values()])
    assert found == set(), f"in clear: {sorted(found)[:5]}"
    erase_and_check(day, tmp_path, hosts)


def erase_and_check(day: Day, tmp_path: Path, hosts: list[Path]) -> None:
    """Erase 40 owners' data sets and 10 owners' whole vaults (their key files too); then no host file
    holds an erased record's wraps or data key, and no key left opens an erased record."""
    erased: dict[int, list[bytes]] = {}
    secrets: list[bytes] = []
    for index in [*ERASED_DATASETS, *ERASED_OWNERS]:
        vault = day.vaults.vault(f"resident-{index:03d}")
        erased[index] = vault.list(f"ds-car-{index:03d}", 0, 2**62)
        for record_id in erased[index]:
            record = vault.get_record(record_id)
            for key in [day.owner_keys[index], *([day.insurer] if index < INSURED else [])]:
                blob = vault.store.get_key(record_id, key.public)
                secrets += [blob.enc, blob.ct, unwrap_data_key(WrappedKey(blob.recipient, blob.enc, blob.ct), key,
                                                               record.header)]
    assert len(erased) == 50 and all(len(ids) == TRIPS for ids in erased.values())
    # Before erasure the secrets are in the vault host's files: the check below can fail.
    wraps = set(secrets[0::3] + secrets[1::3])  # (data keys are never stored, only their wraps)
    assert find_forms(wraps, list(files_bytes(tmp_path / "vaults").values())) == wraps
    (tmp_path / "owners").mkdir()
    for index in ERASED_DATASETS:
        day.vaults.vault(f"resident-{index:03d}").erase_dataset(f"ds-car-{index:03d}")
    for index in ERASED_OWNERS:
        key_file = tmp_path / "owners" / f"{index}.key"
        save_key_file(key_file, day.owner_keys[index])
        day.vaults.vault(f"resident-{index:03d}").erase_all(key_file)
        assert not key_file.exists()
    contents = list(files_bytes(*hosts, tmp_path / "owners").values())
    assert not find_forms(set(secrets), contents)
    # Every key still held (the owners of data sets erased keep their vault key; the insurer its own),
    # with every wrapped key left in the same vault, opens no erased record; the owner's read is refused.
    for index, record_ids in erased.items():
        vault = day.vaults.vault(f"resident-{index:03d}")
        keys = [*([day.owner_keys[index]] if index in ERASED_DATASETS else []), day.insurer]
        left = list(vault.store.key_blobs())
        assert not any(blob.record_id in record_ids for blob in left)
        record = vault.get_record(record_ids[index % TRIPS])
        for blob in left:
            for key in keys:
                with pytest.raises(TelemetryError):
                    data_key = unwrap_data_key(WrappedKey(blob.recipient, blob.enc, blob.ct), key, record.header)
                    decrypt_window(data_key, record.header, record.ciphertext)
        for record_id in record_ids:
            with pytest.raises(VaultError) as caught:
                vault.read_owner(record_id, day.owner_keys[index])
            assert caught.value.code == "no_key"
    # Owners who erased nothing still read their day.
    kept = day.vaults.vault("resident-077")
    assert len(kept.list("ds-car-077", 0, 2**62)) == TRIPS
