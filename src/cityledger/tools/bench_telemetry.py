"""`cityledger bench telemetry`: sealed vehicle windows, device -> Mosquitto -> gateway -> owners' vaults.

The project's Mosquitto runs as a child process on a free loopback port, with a password and an ACL
entry per device. `--publishers` device processes each take a share of `--devices` vehicles (one MQTT
connection per vehicle, its own user and topic, through the devices' own lean publisher,
offchain/telemetry/publisher.py, as the product's `telemetry publish` does) and seal every window before the clock starts (one
message = one 10 s window of 1 Hz samples, sealed for the owner with HPKE, signed with the device's
Ed25519 key). Then the same messages go through the same broker again and again, in this order:

  0. raw at QoS 0: to a plain paho-mqtt subscriber in this process that does nothing with them;
  then `--pairs` times (default 3), each pair measured together, one right after the other:
  1. raw: the same subscriber at QoS 1, as the gateway subscribes: the ceiling of the broker and
     paho here;
  2. gateway: to the Gateway in this process (QoS 1, persistent session, manual acks), which checks
     every signature in its worker processes, checks registration and sequence, stores each record
     durably in its owner's vault (`--owners` SQLite vaults, fsynced) and only then acknowledges it,
     and anchors one root per `--interval` seconds (a signed AnchorGatewayRoot tx per interval is
     built; no ledger runs, so it is counted, not submitted).

Every publisher publishes at QoS 1 and has all its messages acknowledged by the broker. Rates are
messages over the wall time from the start signal to the last message received (raw) or stored and
acknowledged (gateway), publishers included: they run on the same machine. Each gateway round starts
from empty folders (state, journal, vaults) and ends its persistent sessions at the broker, so the
next raw round's messages are not queued for it. The rates and the ratio are the medians of the pairs:
on a shared or throttled machine one round's rate can swing by a third, and a pair measured back to
back swings together.

With `--gateways N` (N > 1; the default is one per core, as `cityledger init --telemetry` configures a
node, docs/SCALING.md) the gateway round runs N gateway processes instead, gateway k taking the
devices of the topic buckets b with b % N == k (broker.shard_topics), each with its own folder, state,
journal, persistent session and verify workers (cores / N), the owners' vaults shared; they hand their
interval roots over a pipe to the bench's process, which anchors one fleet root per interval over them
(offchain/telemetry/fleet.py, as a node with `[telemetry] gateways = N` does).
`--window-s` sets the devices' window (default 10 s): a longer window packs more 1 Hz samples into
each message, so samples_per_s = msgs_per_s x window_s; say which window a figure was measured with.

Run: cityledger bench telemetry [--devices 40] [--owners 40] [--messages 20000] [--publishers 2]
                                [--interval 2] [--gateways CORES] [--window-s 10] [--pairs 3]
                                [--verify-workers N] [--json]
The last line of output is one JSON object:
  msgs_per_s              messages stored in vaults per second, end to end (the median round)
  samples_per_s           msgs_per_s x window_s: each message is one vehicle's window of 1 Hz samples
                          (10 s unless --window-s), a sample one reading at one second (position and
                          speed together)
  values_per_s            samples_per_s x 3 (lat_e7, lon_e7, speed_cm_s: the sensor channels)
  window_s, gateways      the window and the number of gateway processes of the run
  raw_broker_msgs_per_s   the same messages to a subscriber doing nothing, QoS 1 (the gateway's QoS;
                          the median round)
  raw_broker_qos0_msgs_per_s   the same at QoS 0 (one round)
  ratio_to_raw            per pair, the gateway round's rate / the raw round's; the median pair's
                          (ratio_to_raw_min: the lowest pair's; ratio_to_raw_qos0: msgs_per_s /
                          raw_broker_qos0_msgs_per_s); pairs: each pair's rates and ratio
  p99_ingest_ms           per message, publish call -> stored and acknowledged by the gateway, 99th
                          percentile over every gateway round, under the full load (so it includes queueing)
  anchor_txs_per_interval the most anchor txs in any interval (1 whatever the fleet size and the number of
                          gateways: with N > 1 one fleet root over the gateways' roots), intervals;
                          shard_roots_per_interval the most gateway roots one anchored root covers
  cpu_us_per_msg          CPU time of every process of the gateway rounds (devices, broker, gateway(s),
                          verify workers) per message, and split: _gateway_process (all of them),
                          _verify_workers, _devices_and_broker; raw_cpu_us_per_msg for the raw QoS 1
                          rounds. Read from /proc: steadier than the rates when other jobs
                          share the machine
  load_average            the machine's load when the run ended (other jobs included)
  ed25519_verify_us       the machine's speed: µs per Ed25519 check of a 600-byte message on one core,
                          timed before and after the rounds (the check is the gateway's costliest
                          step; a shared VM's speed drifts, and runs of two machines compare through it)
  cpu_steal_pct           of the machine's CPU time over the pairs, the share its hypervisor gave to
                          other guests (/proc/stat steal): on a shared VM, rates fall as it rises
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ..core.encoding import encode
from ..core.keys import SCHEME_ED25519, PrivateKey, verify_ed25519_zip215
from ..offchain.telemetry import DeviceConfig, DeviceEntry, Sample, VaultKey, seal_window
from ..offchain.telemetry.broker import GATEWAY_USER, TOPIC_PREFIX, Broker, device_shard
from ..offchain.telemetry.fleet import SHARD_WAIT_S, FleetAnchor
from ..offchain.telemetry.format import MAX_WINDOW_S
from ..offchain.telemetry.gateway import Gateway, gateway_client_id
from ..offchain.telemetry.publisher import KEEPALIVE_S, PUBLISH_CHUNK, Publisher
from ..offchain.telemetry.shards import TICK_S as SHARD_TICK_S
from ..offchain.telemetry.shards import ShardLink, answer_shard, default_gateways
from ..offchain.telemetry.workers import MAX_VERIFY_WORKERS
from ..offchain.vaults import VaultHost
from ..sdk.telemetry import anchor_gateway_root

CHAIN_ID = "bench-city-1"
WINDOW_S = 10  # the devices' default window: one message per 10 s of 1 Hz samples
CHANNELS = 3  # lat_e7, lon_e7, speed_cm_s
T0 = 1_800_000_000  # the first window's start (a multiple of WINDOW_S)
GUARD_S = 300  # only keeps a broken run from hanging
PUBLISHER_INFLIGHT = 1_000  # QoS 1 messages a device's client keeps unacknowledged before waiting
MAX_DEVICES = 2_000
MAX_MESSAGES = 1_000_000
MAX_PUBLISHERS = 16
MAX_BENCH_GATEWAYS = 16  # gateway processes the bench starts at most
PAIRS = 3  # raw-then-gateway rounds; the figures are their medians
CALIBRATION_CHECKS = 1_000  # Ed25519 checks timed for ed25519_verify_us
MAX_PAIRS = 20


def _ed25519_verify_us(count: int = CALIBRATION_CHECKS) -> float:
    """The machine's speed in the gateway's costliest step: µs per Ed25519 check of a window-sized
    message, one core, the best of three runs (the figures of two machines compare through it)."""
    key = PrivateKey(SCHEME_ED25519, os.urandom(32))
    message = os.urandom(600)
    signature = key.sign(message)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            verify_ed25519_zip215(key.public_key.key, message, signature)
        best = min(best, (time.perf_counter() - start) / count)
    return best * 1e6


def _machine_ticks() -> tuple[int, int]:
    """(all, stolen) CPU ticks of the machine so far, from /proc/stat's cpu line; (0, 0) where unreadable.
    Stolen: time the hypervisor gave this VM's virtual CPUs to someone else."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def _cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far, from /proc (0 where unreadable)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _samples(rng: random.Random, start: int, window_s: int) -> list[Sample]:
    return [Sample(start + i, (rng.randrange(400_000_000, 600_000_000), rng.randrange(100_000_000, 1_500_000_000),
                               rng.randrange(0, 20_000))) for i in range(window_s)]


def _seal_all(devices: list[dict], per_device: int, window_s: int) -> list[list[bytes]]:
    """Every device's messages (its windows in order), sealed and encoded."""
    rng = random.Random(os.getpid())
    sealed: list[list[bytes]] = []
    for device in devices:
        key = PrivateKey(SCHEME_ED25519, device["seed"])
        config = DeviceConfig(device["did"], device["owner_key"], device["dataset"], "vehicle/1", window_s)
        sealed.append([encode(seal_window(key, config, seq, T0 + window_s * seq, _samples(rng, T0 + window_s * seq,
                                                                                          window_s)))
                       for seq in range(per_device)])
    return sealed


def _connect(device: dict, port: int) -> Publisher:
    publisher = Publisher("127.0.0.1", port, device["username"], device["username"], device["password"],
                          inflight=PUBLISHER_INFLIGHT, timeout_s=GUARD_S)
    publisher.connect()
    return publisher


class _Publishers:
    """The device processes and the signals that start each round."""

    def __init__(self, devices: list[dict], per_device: int, count: int, port: int, rounds: int,
                 window_s: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.out = context.Queue()
        self.gos = [context.Event() for _ in range(rounds)]
        self.procs = []
        self._early: list[tuple[str, Any]] = []
        for index in range(count):
            share = devices[index::count]
            proc = context.Process(target=_round_runner, args=(share, per_device, port, self.gos, self.out, window_s),
                                   daemon=True)
            proc.start()
            self.procs.append(proc)
        self._expect("sealed")
        self.round = 0

    def _expect(self, kind: str) -> list:
        """One report of `kind` from every publisher (a faster one's next reports are kept for later)."""
        got = [value for what, value in self._early if what == kind][:len(self.procs)]
        self._early = [(what, value) for what, value in self._early if what != kind]
        while len(got) < len(self.procs):
            what, value = self.out.get(timeout=GUARD_S)
            if what == "failed":
                raise RuntimeError(f"publisher: {value}")
            if what == kind:
                got.append(value)
            else:
                self._early.append((what, value))
        return got

    def run_round(self) -> float:
        """Start a round once every publisher is connected; the monotonic time of the start signal."""
        self._expect("connected")
        start = time.monotonic()
        self.gos[self.round].set()
        self.round += 1
        return start

    def publish_times(self) -> dict[tuple[str, int], float]:
        return {(did, seq): t for times in self._expect("published") for did, seq, t in times}

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def _round_runner(devices: list[dict], per_device: int, port: int, gos: list, out: Any, window_s: int) -> None:
    """A device process over several rounds, each started by its own event: every device's windows
    published in turns of PUBLISH_CHUNK each, then all acknowledged."""
    sealed = _seal_all(devices, per_device, window_s)
    out.put(("sealed", per_device * len(devices)))
    for go in gos:
        publishers = [_connect(device, port) for device in devices]
        out.put(("connected", None))
        while not go.wait(KEEPALIVE_S / 4):  # the previous round's reports, the next subscriber's start
            for publisher in publishers:
                publisher.ping()
        times = []
        for first in range(0, per_device, PUBLISH_CHUNK):
            for device, publisher, messages in zip(devices, publishers, sealed):
                chunk = messages[first:first + PUBLISH_CHUNK]
                now = time.monotonic()
                times.extend((device["did"], seq, now) for seq in range(first, first + len(chunk)))
                publisher.publish(device["topic"], chunk)
        for publisher in publishers:
            publisher.wait_acked(GUARD_S)
            publisher.disconnect()
        out.put(("published", times))


def _raw_round(broker: Broker, publishers: _Publishers, total: int, qos: int) -> tuple[float, float]:
    """The messages per second a subscriber doing nothing receives (publishers included), and the
    CPU seconds every process of the round used."""
    received = [0]
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_client, _userdata, _message) -> None:
        received[0] += 1
        if received[0] == total:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-raw-{qos}", clean_session=True)
    client.username_pw_set(GATEWAY_USER, broker.gateway_password())
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(TOPIC_PREFIX + "#", qos=qos)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(broker.host, broker.port)
    client.loop_start()
    if not subscribed.wait(GUARD_S):
        raise RuntimeError("raw subscriber: not subscribed")
    pids = [os.getpid(), broker.process.pid, *(proc.pid for proc in publishers.procs)]
    cpu = _cpu_s(pids)
    start = publishers.run_round()
    if not done.wait(GUARD_S):
        raise RuntimeError(f"raw subscriber: {received[0]} of {total} messages")
    elapsed = time.monotonic() - start
    publishers.publish_times()
    cpu = _cpu_s(pids) - cpu
    client.disconnect()
    client.loop_stop()
    return total / elapsed, cpu


class _Anchors:
    """The gateway's anchor callable: a signed AnchorGatewayRoot tx per call, counted per interval."""

    def __init__(self, gateway_did: str = "did:city:bench-gateway") -> None:
        self.key = PrivateKey.generate()
        self.gateway_did = gateway_did
        self.txs: dict[int, list[bytes]] = {}
        self.nonce = 0

    def __call__(self, root: bytes, count: int, interval: int) -> None:
        tx = anchor_gateway_root(CHAIN_ID, self.key, self.nonce, self.gateway_did, root, count, interval)
        self.nonce += 1
        self.txs.setdefault(interval, []).append(tx)


def _gateway_round(home: Path, broker: Broker, publishers: _Publishers, registry: dict[str, DeviceEntry],
                   total: int, interval_s: int, workers: int | None) -> dict[str, Any]:
    """End to end through the gateway: rate, ingest latencies, anchors."""
    stored_at: dict[tuple[str, int], float] = {}

    def on_stored(records) -> None:
        now = time.monotonic()
        for record in records:
            stored_at[(record.stored.header.device, record.stored.header.seq)] = now

    anchors = _Anchors()
    vaults = VaultHost(home / "vaults")
    for owner in sorted({entry.owner for entry in registry.values()}):
        vaults.vault(owner)  # the owners' vaults exist already, as in a running city
    gateway = Gateway(home / "gateway", vaults, registry.get, anchors, broker.host, broker.port,
                      broker.gateway_password(), interval_s=interval_s, on_stored=on_stored, verify_workers=workers)
    gateway.start()
    try:
        workers = gateway.workers.pids() if gateway.workers is not None else []
        others = [broker.process.pid, *(proc.pid for proc in publishers.procs)]
        cpu = (_cpu_s([os.getpid()]), _cpu_s(workers), _cpu_s(others))
        start = publishers.run_round()
        if not gateway.wait_processed(total, GUARD_S):
            raise RuntimeError(f"gateway: {gateway.stored} of {total} stored, failure {gateway.failure!r}")
        elapsed = time.monotonic() - start
        published = publishers.publish_times()
        cpu = (_cpu_s([os.getpid()]) - cpu[0], _cpu_s(workers) - cpu[1], _cpu_s(others) - cpu[2])
        # Let the clock leave the last interval so it is anchored too.
        deadline = time.monotonic() + 2 * interval_s + GUARD_S / 10
        while sum(r.count for r in gateway.roots() if r.anchored) < total and time.monotonic() < deadline:
            time.sleep(0.05)
        anchored = sum(r.count for r in gateway.roots() if r.anchored)
    finally:
        gateway.close()
        gateway.vaults.close()
    return {"elapsed": elapsed, "stored": gateway.stored, "cpu": cpu, "refused": dict(gateway.refused),
            "latencies_ms": [(stored_at[key] - published[key]) * 1000 for key in published if key in stored_at],
            "anchor_txs": {i: len(txs) for i, txs in anchors.txs.items()},
            "shard_roots_per_interval": 1 if anchors.txs else 0,
            "anchored_records": anchored, "verify_workers": len(workers)}


def _shard_main(shard: int, shards: int, home: Path, broker: tuple[str, int, str], registry: dict[str, DeviceEntry],
                expected: int, interval_s: int, workers: int, out: Any, release: Any, conn: Any) -> None:
    """Gateway `shard` of `shards` in its own process: its own folder, state, journal and persistent
    session, the owners' vaults shared; its interval roots handed over `conn` to the bench's process,
    which anchors one fleet root per interval (as a node's shards do, offchain/telemetry/shards.py)."""
    try:
        stored_at: dict[tuple[str, int], float] = {}

        def on_stored(records) -> None:
            now = time.monotonic()
            for record in records:
                stored_at[(record.stored.header.device, record.stored.header.seq)] = now

        link = ShardLink(conn, shard)
        vaults = VaultHost(home / "vaults")
        # Its devices' owners' vaults open already, as in a running city (the bench's process made them).
        for owner in sorted({entry.owner for did, entry in registry.items() if device_shard(did, shards) == shard}):
            vaults.vault(owner)
        gateway = Gateway(home / f"gateway-{shard}", vaults, registry.get, link.anchor, *broker,
                          interval_s=interval_s, on_stored=on_stored, verify_workers=workers, shard=shard,
                          shards=shards)
        gateway.start()
        closer = threading.Thread(target=_report_closed, args=(link, gateway), daemon=True)
        closer.start()
        out.put(("ready", (shard, os.getpid(), gateway.workers.pids() if gateway.workers else [])))
        if not gateway.wait_processed(expected, GUARD_S):
            raise RuntimeError(f"gateway {shard}: {gateway.stored} of {expected} stored, failure {gateway.failure!r}")
        end = time.monotonic()
        out.put(("processed", shard))  # the bench reads every process's CPU time now
        deadline = end + 2 * interval_s + GUARD_S / 10
        while sum(r.count for r in gateway.roots() if r.anchored) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        anchored = sum(r.count for r in gateway.roots() if r.anchored)
        out.put(("done", {"end": end, "stored": gateway.stored, "refused": dict(gateway.refused), "anchored": anchored,
                          "stored_at": stored_at}))
        release.wait(GUARD_S)  # the workers stay until the bench has read their CPU time
        link.stopping.set()
        gateway.close()
        vaults.close()
    except Exception as exc:  # noqa: BLE001 - reported to the bench's process, which stops
        out.put(("failed", f"gateway {shard}: {exc!r}"))


def _sharded_round(home: Path, broker: Broker, publishers: _Publishers, registry: dict[str, DeviceEntry],
                   per_device: int, interval_s: int, shards: int, workers: int | None) -> dict[str, Any]:
    """End to end through `shards` gateway processes, each taking its topic buckets' devices."""
    context = multiprocessing.get_context("spawn")
    out, release = context.Queue(), context.Event()
    reports = _Reports(out)
    expected = [0] * shards
    for did in registry:
        expected[device_shard(did, shards)] += per_device
    if workers is None:
        workers = max(1, (os.cpu_count() or 1) // shards)
    made = VaultHost(home / "vaults")  # the owners' vaults exist already, as in a running city
    for owner in sorted({entry.owner for entry in registry.values()}):
        made.vault(owner)
    made.close()
    anchors = _Anchors()
    fleet = FleetAnchor(home / "fleet.sqlite", shards, interval_s, anchors)
    pipes = [context.Pipe() for _ in range(shards)]
    procs = [context.Process(target=_shard_main, daemon=True,
                             args=(k, shards, home, (broker.host, broker.port, broker.gateway_password()), registry,
                                   expected[k], interval_s, workers, out, release, pipes[k][1]))
             for k in range(shards)]
    for proc, (_, theirs) in zip(procs, pipes):
        proc.start()
        theirs.close()  # the shard's end lives in the shard only: its exit closes the pipe
    stop = threading.Event()
    serving = [threading.Thread(target=_serve_shard, args=(fleet, k, pipes[k][0]), daemon=True) for k in range(shards)]
    serving.append(threading.Thread(target=_tick_fleet, args=(fleet, stop), daemon=True))
    for thread in serving:
        thread.start()
    try:
        ready = reports.take("ready", shards)
        gateways = [pid for _, pid, _ in ready]
        verifiers = [pid for _, _, pids in ready for pid in pids]
        others = [broker.process.pid, *(proc.pid for proc in publishers.procs)]
        cpu = (_cpu_s(gateways), _cpu_s(verifiers), _cpu_s(others))
        start = publishers.run_round()
        reports.take("processed", shards)
        cpu = (_cpu_s(gateways) - cpu[0], _cpu_s(verifiers) - cpu[1], _cpu_s(others) - cpu[2])
        published = publishers.publish_times()
        done = reports.take("done", shards)
        # The fleet root of the last interval once every shard handed its root (or the wait ran out).
        deadline = time.monotonic() + 2 * interval_s + SHARD_WAIT_S + GUARD_S / 10
        while sum(r.count for r in fleet.roots() if r.anchored) < sum(r["anchored"] for r in done) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        release.set()
        for proc in procs:
            proc.join(timeout=GUARD_S / 10)
            if proc.is_alive():
                proc.kill()
        stop.set()
        for thread in serving:
            thread.join(timeout=GUARD_S / 10)
    fleet_roots = [root for root in fleet.roots() if root.anchored]
    leaves = [sum(leaf.count > 0 for leaf in fleet.leaves(root.interval)) for root in fleet_roots]
    fleet.close()
    stored_at = {key: t for report in done for key, t in report["stored_at"].items()}
    refused: dict[str, int] = {}
    for report in done:
        for code, count in report["refused"].items():
            refused[code] = refused.get(code, 0) + count
    return {"elapsed": max(r["end"] for r in done) - start, "stored": sum(r["stored"] for r in done), "cpu": cpu,
            "refused": refused,
            "latencies_ms": [(stored_at[key] - published[key]) * 1000 for key in published if key in stored_at],
            "anchor_txs": {i: len(txs) for i, txs in anchors.txs.items()},
            "shard_roots_per_interval": max(leaves, default=0),
            "anchored_records": sum(root.count for root in fleet_roots), "verify_workers": workers * shards}


def _serve_shard(fleet: FleetAnchor, shard: int, conn: Any) -> None:
    """The bench's end of a shard's link: keep its roots (acknowledged), note what it closed."""
    send_lock = threading.Lock()

    def send(*message) -> None:
        with send_lock:
            conn.send(message)

    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        answer_shard(fleet, shard, message, send)


def _report_closed(link: ShardLink, gateway: Gateway) -> None:
    """A shard's intervals closed, told to the bench's fleet every TICK_S (as a node's shards do)."""
    while not link.stopping.wait(SHARD_TICK_S):
        link.report_closed(gateway)


def _tick_fleet(fleet: FleetAnchor, stop: threading.Event) -> None:
    while not stop.wait(SHARD_TICK_S):
        fleet.tick()


class _Reports:
    """The gateway processes' reports, taken by kind (a faster process's later ones kept for later)."""

    def __init__(self, out: Any) -> None:
        self.out, self.early = out, []

    def take(self, kind: str, count: int) -> list:
        got = [value for what, value in self.early if what == kind]
        self.early = [(what, value) for what, value in self.early if what != kind]
        while len(got) < count:
            what, value = self.out.get(timeout=GUARD_S)
            if what == "failed":
                raise RuntimeError(value)
            (got if what == kind else self.early).append(value if what == kind else (what, value))
        return got


def _devices(broker: Broker, count: int, owners: int) -> tuple[list[dict], dict[str, DeviceEntry]]:
    owner_keys = [VaultKey.generate() for _ in range(owners)]
    devices, registry = [], {}
    for index in range(count):
        seed = os.urandom(32)
        key = PrivateKey(SCHEME_ED25519, seed)
        did = f"did:city:bench-car-{index:05d}"
        owner = f"city-bench-owner-{index % owners:05d}"
        owner_key = owner_keys[index % owners]
        creds = broker.add_device(did)
        devices.append({"seed": seed, "did": did, "owner_key": owner_key.public, "dataset": f"ds-car-{index:05d}",
                        "username": creds.username, "password": creds.password, "topic": creds.topic})
        registry[did] = DeviceEntry(did, key.public_key, owner, owner_key.public)
    return devices, registry


def run(devices: int, owners: int, messages: int, publishers: int, interval_s: int, gateways: int = 1,
        window_s: int = WINDOW_S, verify_workers: int | None = None, pairs: int = PAIRS) -> dict[str, Any]:
    """The whole bench in a temporary folder; its summary."""
    per_device = messages // devices
    total = per_device * devices
    verify_us = _ed25519_verify_us()
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as folder:
        home = Path(folder)
        broker = Broker(home / "broker")
        broker.gateway_password()
        device_list, registry = _devices(broker, devices, owners)
        broker.start()
        pubs = _Publishers(device_list, per_device, publishers, broker.port, rounds=1 + 2 * pairs, window_s=window_s)
        try:
            raw0, _ = _raw_round(broker, pubs, total, qos=0)
            rounds = []
            ticks = _machine_ticks()
            for pair in range(pairs):
                # Each pair: the raw subscriber, then the gateway(s) at once after it, in fresh folders.
                raw, raw_cpu = _raw_round(broker, pubs, total, qos=1)
                folder_k = home / f"round-{pair}"
                folder_k.mkdir()
                if gateways == 1:  # in this process, as the earlier figures were measured
                    gw = _gateway_round(folder_k, broker, pubs, registry, total, interval_s, verify_workers)
                else:
                    gw = _sharded_round(folder_k, broker, pubs, registry, per_device, interval_s, gateways,
                                        verify_workers)
                # The gateways' persistent sessions end with their round: the next raw round's
                # messages are not queued for a gateway that is gone.
                _end_sessions(broker, [gateway_client_id(k, gateways) for k in range(gateways)])
                rounds.append((raw, raw_cpu, gw))
            ticks = tuple(after - before for after, before in zip(_machine_ticks(), ticks))
        finally:
            pubs.close()
            broker.stop()
    summary = _summary(rounds, raw0, total, devices, owners, publishers, interval_s, gateways, window_s)
    summary["cpu_steal_pct"] = round(100 * ticks[1] / ticks[0], 1) if ticks[0] else None
    summary["ed25519_verify_us"] = [round(verify_us, 1), round(_ed25519_verify_us(), 1)]
    return summary


def _end_sessions(broker: Broker, client_ids: list[str]) -> None:
    """Connect as each client id with a clean session and leave: the broker drops what it kept for it."""
    for client_id in client_ids:
        connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        client.username_pw_set(GATEWAY_USER, broker.gateway_password())
        client.on_connect = lambda *_: connected.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            if not connected.wait(GUARD_S / 10):
                raise RuntimeError(f"{client_id}: no CONNACK while ending its session")
        finally:
            client.disconnect()
            client.loop_stop()


def _summary(rounds: list, raw0: float, total: int, devices: int, owners: int, publishers: int, interval_s: int,
             gateways: int, window_s: int) -> dict[str, Any]:
    """The JSON figures of the pairs of rounds: rates and the ratio as medians, the rest over all rounds."""
    rates = [gw["stored"] / gw["elapsed"] for _, _, gw in rounds]
    ratios = [rate / raw for rate, (raw, _, _) in zip(rates, rounds)]
    msgs_per_s = statistics.median(rates)
    raw = statistics.median([raw for raw, _, _ in rounds])
    per_interval = [count for _, _, gw in rounds for count in gw["anchor_txs"].values()]
    latencies = sorted(ms for _, _, gw in rounds for ms in gw["latencies_ms"])
    cpu = [sum(gw["cpu"][part] for _, _, gw in rounds) for part in range(3)]
    messages = total * len(rounds)
    refused: dict[str, int] = {}
    for _, _, gw in rounds:
        for code, count in gw["refused"].items():
            refused[code] = refused.get(code, 0) + count
    return {
        "msgs_per_s": round(msgs_per_s),
        "samples_per_s": round(msgs_per_s * window_s),  # one 1 Hz sample per second of a window
        "values_per_s": round(msgs_per_s * window_s * CHANNELS),
        "window_s": window_s,
        "gateways": gateways,
        "raw_broker_msgs_per_s": round(raw),
        "raw_broker_qos0_msgs_per_s": round(raw0),
        "ratio_to_raw": round(statistics.median(ratios), 3),  # the median pair's, each pair measured together
        "ratio_to_raw_min": round(min(ratios), 3),
        "ratio_to_raw_qos0": round(msgs_per_s / raw0, 3),
        "pairs": [{"raw_broker_msgs_per_s": round(raw), "msgs_per_s": round(rate), "ratio_to_raw": round(ratio, 3)}
                  for (raw, _, _), rate, ratio in zip(rounds, rates, ratios)],
        "p99_ingest_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 1) if latencies else None,
        "anchor_txs_per_interval": max(per_interval, default=0),  # the fleet's, every gateway's roots in one
        "shard_roots_per_interval": max(gw["shard_roots_per_interval"] for _, _, gw in rounds),
        # CPU per message, every process of the rounds (publishers and broker included): steadier
        # than the rates when other jobs share the machine.
        "cpu_us_per_msg": round(sum(cpu) / messages * 1e6, 1),
        "cpu_us_per_msg_gateway_process": round(cpu[0] / messages * 1e6, 1),
        "cpu_us_per_msg_verify_workers": round(cpu[1] / messages * 1e6, 1),
        "cpu_us_per_msg_devices_and_broker": round(cpu[2] / messages * 1e6, 1),
        "raw_cpu_us_per_msg": round(sum(raw_cpu for _, raw_cpu, _ in rounds) / messages * 1e6, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "intervals": len(per_interval),
        # Every round must store and anchor every message: the fewest of any round.
        "anchored_records": min(gw["anchored_records"] for _, _, gw in rounds),
        "messages": total, "stored": min(gw["stored"] for _, _, gw in rounds), "refused": refused,
        "devices": devices, "owners": owners, "publishers": publishers, "interval_s": interval_s,
        "seconds": round(statistics.median([gw["elapsed"] for _, _, gw in rounds]), 2),
        "verify_workers": rounds[0][2]["verify_workers"], "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }

def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench telemetry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=40, help="vehicles, one MQTT connection each")
    parser.add_argument("--owners", type=int, default=40, help="owners (vaults) the vehicles are spread over")
    parser.add_argument("--messages", type=int, default=20_000, help="sealed windows in all (per round)")
    parser.add_argument("--publishers", type=int, default=2, help="device processes")
    parser.add_argument("--interval", type=int, default=2, help="the gateway's anchoring interval, seconds")
    parser.add_argument("--gateways", type=int, default=min(default_gateways(), MAX_BENCH_GATEWAYS),
                        help="gateway processes the fleet is split over by topic bucket (default: one per core, as "
                             "`cityledger init --telemetry` configures a node; 1: in the bench's process)")
    parser.add_argument("--window-s", type=int, default=WINDOW_S,
                        help="the devices' window, seconds of 1 Hz samples per message (default 10)")
    parser.add_argument("--pairs", type=int, default=PAIRS,
                        help="raw-then-gateway rounds; rates and the ratio are their medians (default 3)")
    parser.add_argument("--verify-workers", type=int, default=None,
                        help="signature worker processes per gateway (default: cores / gateways; 0: checked "
                             "in the gateway's own checking thread)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if not 1 <= args.devices <= MAX_DEVICES:
        parser.error(f"--devices: expected 1 to {MAX_DEVICES}")
    if not 1 <= args.owners <= args.devices:
        parser.error(f"--owners: expected 1 to --devices ({args.devices})")
    if not args.devices <= args.messages <= MAX_MESSAGES:
        parser.error(f"--messages: expected --devices ({args.devices}) to {MAX_MESSAGES}")
    if not 1 <= args.publishers <= min(MAX_PUBLISHERS, args.devices):
        parser.error(f"--publishers: expected 1 to {min(MAX_PUBLISHERS, args.devices)}")
    if not 1 <= args.interval <= 3600:
        parser.error("--interval: expected 1 to 3600")
    if not 1 <= args.gateways <= MAX_BENCH_GATEWAYS:
        parser.error(f"--gateways: expected 1 to {MAX_BENCH_GATEWAYS}")
    if not 1 <= args.window_s <= MAX_WINDOW_S:
        parser.error(f"--window-s: expected 1 to {MAX_WINDOW_S}")
    if args.verify_workers is not None and not 0 <= args.verify_workers <= MAX_VERIFY_WORKERS:
        parser.error(f"--verify-workers: expected 0 (the gateway's own thread) to {MAX_VERIFY_WORKERS}")
    if not 1 <= args.pairs <= MAX_PAIRS:
        parser.error(f"--pairs: expected 1 to {MAX_PAIRS}")
    result = run(args.devices, args.owners, args.messages, args.publishers, args.interval, args.gateways,
                 args.window_s, args.verify_workers, args.pairs)
    if not args.json:
        print(f"{result['stored']} messages in {result['seconds']} s: {result['msgs_per_s']} msgs/s "
              f"({result['samples_per_s']} samples/s), raw broker {result['raw_broker_msgs_per_s']} msgs/s "
              f"(QoS 0: {result['raw_broker_qos0_msgs_per_s']}), ratio {result['ratio_to_raw']}, "
              f"p99 ingest {result['p99_ingest_ms']} ms, {result['anchor_txs_per_interval']} anchor tx per interval",
              file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
