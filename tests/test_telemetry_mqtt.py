"""Telemetry over the real Mosquitto: device -> broker (passwords, ACL) -> gateway -> owner's vault -> roots."""

from __future__ import annotations

import random
import threading

import paho.mqtt.client as mqtt
import pytest

from cityledger.offchain.telemetry import VaultKey, is_included
from cityledger.offchain.telemetry.broker import Broker, find_binary
from cityledger.offchain.telemetry.gateway import Gateway
from cityledger.offchain.vaults import VaultHost
from telemetry_helpers import OWNER, Fleet, vehicle_samples

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_binary("mosquitto") is None,
                       reason="mosquitto not installed: run scripts/install_mosquitto.sh (make install does)"),
]

WAIT_S = 10.0  # upper bound on any wait below; the tests never assert on how long something took
T0 = 1_800_000_000  # a window start (a multiple of 10 s)


class Anchors:
    """The anchor callable the gateway is given: records what it was handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, int, int]] = []
        self.changed = threading.Condition()

    def __call__(self, root: bytes, count: int, interval: int) -> None:
        with self.changed:
            self.calls.append((root, count, interval))
            self.changed.notify_all()

    def wait(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.calls) >= count, WAIT_S)


@pytest.fixture
def city(tmp_path):
    """A running broker, one owner's fleet, the owner's vaults, and a gateway on a settable clock."""
    broker = Broker(tmp_path / "broker")
    fleet = Fleet(VaultKey.generate(), tmp_path / "devices")
    fleet.folder.mkdir()
    vaults = VaultHost(tmp_path / "vaults")
    now = [float(T0)]
    anchors = Anchors()
    broker.start()

    def gateway() -> Gateway:
        return Gateway(tmp_path / "gateway", vaults, fleet.lookup, anchors, broker.host, broker.port,
                       broker.gateway_password(), interval_s=60, clock=lambda: now[0])

    gw = gateway()
    gw.start()
    yield broker, fleet, vaults, gw, now, anchors, gateway
    gw.close()
    broker.stop()
    vaults.close()


def connect(broker: Broker, username: str, password: str | None):
    """A connected client and the broker's CONNACK reason."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{username}-{random.getrandbits(32)}")
    if password is not None:
        client.username_pw_set(username, password)
    answered = threading.Event()
    reasons = []
    client.on_connect = lambda _c, _u, _f, reason, _p: (reasons.append(reason), answered.set())
    client.on_disconnect = lambda *args: answered.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert answered.wait(WAIT_S), "no CONNACK from the broker"
    return client, (reasons[0] if reasons else None)


def publish(client, topic: str, payloads: list[bytes]) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACKs."""
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(WAIT_S)


def device(broker: Broker, fleet: Fleet, register_broker: bool = True):
    """A registered device (sealer) with a connected MQTT client."""
    sealer = fleet.add()
    creds = broker.add_device(sealer.config.device_did)
    client, reason = connect(broker, creds.username, creds.password)
    assert not reason.is_failure
    return sealer, creds, client


def stored_ids(vaults: VaultHost) -> list[bytes]:
    return vaults.vault(OWNER).list("ds-car-1", 0, 2**62)


def test_owner_reads_back_exactly_its_samples(city):
    broker, fleet, vaults, gw, _, _, _ = city
    rng = random.Random(1)
    sent = {}
    for _ in range(2):
        sealer, creds, client = device(broker, fleet)
        windows = [vehicle_samples(rng, T0 + 10 * i, 10) for i in range(3)]
        publish(client, creds.topic, [sealer.seal(T0 + 10 * i, w) for i, w in enumerate(windows)])
        sent[sealer.config.device_did] = [s for w in windows for s in w]
        client.disconnect()
    assert gw.wait_processed(6, WAIT_S)
    vault = vaults.vault(OWNER)
    got: dict[str, list] = {}
    for record_id in stored_ids(vaults):
        window = vault.read_owner(record_id, fleet.owner_key)
        got.setdefault(window.header.device, []).extend(window.samples)
    assert {did: sorted(samples, key=lambda s: s.t_s) for did, samples in got.items()} == sent
    assert gw.stored == 6 and not gw.refused


def test_broker_refuses_unknown_users_wrong_passwords_and_decommissioned_devices(city):
    broker, fleet, _, _, _, _, _ = city
    sealer, creds, client = device(broker, fleet)
    client.disconnect()
    for username, password in [(creds.username, "not-the-password"), ("dev-unregistered", creds.password),
                               (creds.username, None)]:
        other, reason = connect(broker, username, password)
        other.disconnect()
        other.loop_stop()
        assert reason is not None and reason.is_failure and reason.getName() == "Not authorized"
    # Added while running: SIGHUP makes the broker take it at once; removed: refused again.
    later = broker.add_device("did:city:Later1")
    client, reason = connect(broker, later.username, later.password)
    assert not reason.is_failure
    client.disconnect()
    broker.remove_device("did:city:Later1")
    client, reason = connect(broker, later.username, later.password)
    assert reason.is_failure


def test_acl_keeps_a_device_on_its_own_topic(city):
    broker, fleet, vaults, gw, _, _, _ = city
    rng = random.Random(2)
    sealer_a, creds_a, client_a = device(broker, fleet)
    _, creds_b, client_b = device(broker, fleet)
    # A's own validly signed window, on B's topic and on a topic of no device: the broker drops both.
    publish(client_a, creds_b.topic, [sealer_a.seal(T0, vehicle_samples(rng, T0))])
    publish(client_a, "telemetry/elsewhere", [sealer_a.seal(T0 + 10, vehicle_samples(rng, T0 + 10))])
    # Then one on its own topic: it reaches the gateway after anything published before it would have.
    publish(client_a, creds_a.topic, [sealer_a.seal(T0 + 20, vehicle_samples(rng, T0 + 20))])
    assert gw.wait_processed(1, WAIT_S)
    assert gw.stored == 1 and not gw.refused
    [record_id] = stored_ids(vaults)
    assert vaults.vault(OWNER).get_record(record_id).header.window_start_s == T0 + 20
    # What the broker lets through, the gateway still checks: a device the broker knows but the
    # registry does not, and a message signed by A on C's topic. Nothing more is stored.
    sealer_c = fleet.add()
    del fleet.registry[sealer_c.config.device_did]
    creds_c = broker.add_device(sealer_c.config.device_did)
    client_c, _ = connect(broker, creds_c.username, creds_c.password)
    publish(client_c, creds_c.topic, [sealer_c.seal(T0, vehicle_samples(rng, T0)),
                                      sealer_a.seal(T0 + 30, vehicle_samples(rng, T0 + 30))])
    assert gw.wait_processed(3, WAIT_S)
    assert gw.refused == {"unknown_device": 1, "wrong_topic": 1} and len(stored_ids(vaults)) == 1
    for client in (client_a, client_b, client_c):
        client.disconnect()


def test_gateway_refuses_replays_and_forgeries_across_a_restart(city):
    broker, fleet, vaults, gw, _, _, make_gateway = city
    rng = random.Random(3)
    sealer, creds, client = device(broker, fleet)
    first = sealer.seal(T0, vehicle_samples(rng, T0))
    second = bytearray(sealer.seal(T0 + 10, vehicle_samples(rng, T0 + 10)))
    second[-1] ^= 1  # the signature is the message's last field
    third = sealer.seal(T0 + 20, vehicle_samples(rng, T0 + 20))
    publish(client, creds.topic, [first, first, bytes(second), third])
    assert gw.wait_processed(4, WAIT_S)
    assert gw.stored == 2 and gw.refused == {"replay": 1, "bad_signature": 1}
    assert len(stored_ids(vaults)) == 2
    gw.stop()
    restarted = make_gateway()
    restarted.start()
    try:
        publish(client, creds.topic, [first, third])
        assert restarted.wait_processed(2, WAIT_S)
        assert restarted.stored == 0 and restarted.refused == {"replay": 2}
        assert len(stored_ids(vaults)) == 2
    finally:
        restarted.close()
        client.disconnect()


def test_one_root_per_interval_and_every_record_proves_inclusion(city):
    broker, fleet, _, gw, now, anchors, _ = city
    rng = random.Random(4)
    sealers = [device(broker, fleet) for _ in range(3)]
    published = 0
    for step, count in ((0, 3), (1, 5)):
        now[0] = float(T0 + 60 * step)  # the gateway's clock in interval T0 // 60 + step
        for i in range(count):
            sealer, creds, client = sealers[i % 3]
            start = T0 + 60 * step + 10 * (i // 3)
            publish(client, creds.topic, [sealer.seal(start, vehicle_samples(rng, start))])
        published += count
        assert gw.wait_processed(published, WAIT_S)
    now[0] = float(T0 + 120)
    assert anchors.wait(2)
    assert [(count, interval) for _, count, interval in anchors.calls] == [(3, T0 // 60), (5, T0 // 60 + 1)]
    roots = {interval: root for root, _, interval in anchors.calls}
    assert [r.interval for r in gw.roots() if r.anchored] == sorted(roots)
    proven = 0
    for interval, root in roots.items():
        for record_id in gw.state.record_ids(interval):
            at, proof = gw.inclusion_proof(record_id)
            assert at == interval and is_included(root, record_id, proof)
            other = next(r for i, r in roots.items() if i != interval)
            assert not is_included(other, record_id, proof)
            proven += 1
    assert proven == 8
    for _, _, client in sealers:
        client.disconnect()


def test_a_gateway_failing_after_the_vault_write_loses_nothing_and_counts_nothing_twice(city):
    broker, fleet, vaults, gw, now, anchors, make_gateway = city
    rng = random.Random(5)
    sealer, creds, client = device(broker, fleet)

    def crash(parts, applied):
        raise OSError("disk gone between the vault write and the gateway's commit")

    gw.state.commit_batches = crash  # the records reach the journal and the vault, the state does not
    publish(client, creds.topic, [sealer.seal(T0 + 10 * i, vehicle_samples(rng, T0 + 10 * i)) for i in range(3)])
    with gw._done:
        assert gw._done.wait_for(lambda: gw.failure is not None, WAIT_S)
    assert gw.stored == 0 and len(stored_ids(vaults)) > 0  # acknowledged once journalled, filed halfway
    gw.stop()
    restarted = make_gateway()  # files the journal's batches past the last one the state marked filed
    restarted.start()
    try:
        assert restarted.replayed == 3 and restarted.stored == 0
        assert len(stored_ids(vaults)) == 3
        # A fourth window is the next seq. Messages journalled after the failure but not acknowledged
        # (the subscriber was stopped) come again from the broker: dropped as replays, never stored.
        publish(client, creds.topic, [sealer.seal(T0 + 30, vehicle_samples(rng, T0 + 30))])
        with restarted._done:
            assert restarted._done.wait_for(lambda: restarted.stored == 1, WAIT_S)
        assert set(restarted.refused) <= {"replay"}
        now[0] = float(T0 + 60)
        assert anchors.wait(1)
        assert [(count, interval) for _, count, interval in anchors.calls] == [(4, T0 // 60)]
        assert len(set(restarted.state.record_ids(T0 // 60))) == 4
    finally:
        restarted.close()
        client.disconnect()


@pytest.mark.skipif(find_binary("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_password_hashes_are_the_ones_mosquitto_passwd_writes(tmp_path):
    import base64
    import subprocess

    from cityledger.offchain.telemetry.broker import hash_password

    path = tmp_path / "passwords"
    path.touch()
    subprocess.run([find_binary("mosquitto_passwd"), "-b", str(path), "alice", "s3cret-pass"], check=True)
    _, written = path.read_text().strip().split(":", 1)
    _, kind, iterations, salt, _ = written.split("$")
    assert kind == "7"
    assert hash_password("s3cret-pass", base64.b64decode(salt), int(iterations)) == written
    assert hash_password("s3cret-pasS", base64.b64decode(salt), int(iterations)) != written


def test_a_clock_set_back_never_reopens_an_anchored_interval(city):
    broker, fleet, _, gw, now, anchors, _ = city
    rng = random.Random(6)
    sealer, creds, client = device(broker, fleet)
    publish(client, creds.topic, [sealer.seal(T0, vehicle_samples(rng, T0))])
    assert gw.wait_processed(1, WAIT_S)
    now[0] = float(T0 + 60)
    assert anchors.wait(1)
    now[0] = float(T0)  # back into the anchored interval
    publish(client, creds.topic, [sealer.seal(T0 + 10, vehicle_samples(rng, T0 + 10))])
    assert gw.wait_processed(2, WAIT_S)
    now[0] = float(T0 + 120)
    assert anchors.wait(2)
    assert [(count, interval) for _, count, interval in anchors.calls] == [(1, T0 // 60), (1, T0 // 60 + 1)]
    client.disconnect()


def test_two_gateway_shards_split_the_fleet_by_topic_bucket_each_device_in_one(city, tmp_path):
    """Gateway 0 and 1 of 2, each its own folder, state, journal and session, the vaults shared:
    each takes exactly its buckets' devices, in order, and anchors its own root per interval."""
    from cityledger.offchain.telemetry.broker import device_shard

    broker, fleet, vaults, gw, now, _, _ = city
    gw.stop()  # the fixture's single gateway: its session keeps a copy, which nobody reads here
    roots = [Anchors(), Anchors()]
    shards = [Gateway(tmp_path / f"gateway-{k}", vaults, fleet.lookup, roots[k], broker.host, broker.port,
                      broker.gateway_password(), interval_s=60, clock=lambda: now[0], shard=k, shards=2)
              for k in range(2)]
    for shard in shards:
        shard.start()
    devices = []
    while len(devices) < 4 or len({device_shard(s.config.device_did, 2) for s, _, _ in devices}) < 2:
        devices.append(device(broker, fleet))
    expected = [0, 0]
    rng = random.Random(9)
    try:
        for i in range(3):
            for sealer, creds, client in devices:
                publish(client, creds.topic, [sealer.seal(T0 + 10 * i, vehicle_samples(rng, T0 + 10 * i))])
                expected[device_shard(sealer.config.device_did, 2)] += 1
        for k, shard in enumerate(shards):
            assert shard.wait_processed(expected[k], WAIT_S)
            assert shard.stored == expected[k] and not shard.refused
        for sealer, _, _ in devices:
            did = sealer.config.device_did
            mine = device_shard(did, 2)
            assert shards[mine].state.last_seq(did) == 2 and shards[1 - mine].state.last_seq(did) is None
        assert len(stored_ids(vaults)) == 3 * len(devices)
        now[0] = float(T0 + 60)
        for k in range(2):
            assert roots[k].wait(1) and [(c, i) for _, c, i in roots[k].calls] == [(expected[k], T0 // 60)]
    finally:
        for shard in shards:
            shard.close()
        for _, _, client in devices:
            client.disconnect()


def test_the_lean_publisher_delivers_a_window_run_in_order_and_is_refused_a_wrong_login(city):
    """The devices' own publisher (publisher.py) over the real broker: a run of windows written in lumps
    with a small in-flight window, all acknowledged and filed in order; a wrong password or an unknown
    user is refused with the broker's reason; another device's topic is acknowledged and dropped."""
    from cityledger.offchain.telemetry.publisher import Publisher, PublisherError

    broker, fleet, vaults, gw, _, _, _ = city
    rng = random.Random(10)
    sealer = fleet.add()
    creds = broker.add_device(sealer.config.device_did)
    windows = [vehicle_samples(rng, T0 + 10 * i) for i in range(40)]
    with Publisher(broker.host, broker.port, creds.username, creds.username, creds.password, inflight=8,
                   timeout_s=WAIT_S) as publisher:
        publisher.publish(creds.topic, [sealer.seal(T0 + 10 * i, w) for i, w in enumerate(windows)])
        publisher.publish(device_topic_of_another(broker), [sealer.seal(T0 + 400, vehicle_samples(rng, T0 + 400))])
        # One more on its own topic: it reaches the gateway after the dropped one would have.
        windows.append(vehicle_samples(rng, T0 + 410))
        publisher.publish(creds.topic, [sealer.seal(T0 + 410, windows[-1])])
        publisher.wait_acked()
        assert publisher.acked == 42 and publisher.unacked == 0
    assert gw.wait_processed(41, WAIT_S)
    assert gw.stored == 41 and not gw.refused  # in order (no replay), the other topic's never delivered
    vault = vaults.vault(OWNER)
    got = [s for record_id in stored_ids(vaults) for s in vault.read_owner(record_id, fleet.owner_key).samples]
    assert sorted(got, key=lambda s: s.t_s) == [s for w in windows for s in w]
    for username, password in [(creds.username, "not-the-password"), ("dev-unregistered", creds.password)]:
        with pytest.raises(PublisherError, match="refused the connection: not authorised"):
            Publisher(broker.host, broker.port, username, username, password, timeout_s=WAIT_S).connect()


def device_topic_of_another(broker: Broker) -> str:
    """The topic of a device the broker knows, not the publisher's own."""
    return broker.add_device("did:city:Another1").topic


def test_a_broker_goes_with_its_node_when_the_node_is_killed_and_its_port_is_free_again(tmp_path):
    """A node killed outright (SIGKILL) takes its Mosquitto with it: the broker saves its queue and
    exits, and the next start on the same configured port succeeds (an orphan would hold the port)."""
    import signal
    import subprocess
    import sys
    import time

    from cityledger.offchain.telemetry.broker import is_listening, pick_free_port

    port = pick_free_port()
    script = ("import sys, time\n"
              "from cityledger.offchain.telemetry.broker import Broker\n"
              f"broker = Broker({str(tmp_path / 'broker')!r}, port={port})\n"
              "broker.start()\n"
              "print(broker.process.pid, flush=True)\n"
              "time.sleep(600)\n")
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        mosquitto = int(node.stdout.readline())
        assert is_listening("127.0.0.1", port)
        with open(f"/proc/{mosquitto}/cmdline", "rb") as cmdline:
            assert b"mosquitto" in cmdline.read()  # the pid is the broker's own (setpriv ran it)
        node.send_signal(signal.SIGKILL)
        node.wait()
        deadline = time.monotonic() + 10
        while not _exited(mosquitto) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _exited(mosquitto)
        assert (tmp_path / "broker" / "data" / "mosquitto.db").exists()  # its queue saved on the way out
    finally:
        node.kill()
    again = Broker(tmp_path / "broker", port=port)
    again.start()
    try:
        assert again.is_ready() and again.port == port
    finally:
        again.stop()


def _exited(pid: int) -> bool:
    """True once the process is gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True
