"""Simulated traffic against a live node: a sponsor's programme, a small fleet enrolled, each vehicle
committing to its own trips, owners proving and claiming through the SDK. Aggressive drivers earn less
than cautious ones, the budget holds, and nothing the ledger serves holds a simulated coordinate,
timestamp or speed (scanned for the exact values; the scan is shown to find a planted leak)."""

from __future__ import annotations

import random
import struct

import pytest

pytest.importorskip("libsumo")

from cityledger.core.keys import PrivateKey  # noqa: E402
from cityledger.node.home import init_home, load_config  # noqa: E402
from cityledger.node.runner import Node  # noqa: E402
from cityledger.sim.rewards import Terms, run_rewarded_traffic, sample_forms, scan  # noqa: E402
from cityledger.offchain.mobility.features import Sample, compute_features  # noqa: E402
from cityledger.offchain.telemetry.format import Sample as TelemetrySample  # noqa: E402
from cityledger.sim.traffic import TrafficSim, Trip  # noqa: E402
from cityledger.tools.bench_rewards import _genesis  # noqa: E402

from test_api_helpers import LiveServer, free_port  # noqa: E402

pytestmark = pytest.mark.slow


def test_a_small_fleet_earns_by_driving_style_within_the_budget_and_leaks_nothing(tmp_path):
    home = tmp_path / "home"
    init_home(home, members=1, port=free_port(), issuers=False)
    office = PrivateKey(1, b"\x71" * 32)
    _, sponsor = _genesis(home, office)
    config = load_config(home)
    config.solo.block_interval_ms = 50
    work = tmp_path / "sim"
    work.mkdir()
    sim = TrafficSim(work, 9, 0.2, seed=3)
    # a budget small enough to run out: the last claims are paid what remains, then refused
    terms = Terms(budget=100_000, min_score=60, reward_per_trip=5_000, reward_per_km=2_000, cap_per_trip=20_000,
                  cap_per_enrollee=60_000)
    with LiveServer(Node(config)) as server:
        result = run_rewarded_traffic(server.url, sponsor, office, b"o" * 32, sim, terms)
    rewards = result["rewards"]
    classes = rewards["classes"]
    assert classes["aggressive"]["reward"] < classes["cautious"]["reward"], classes
    assert all(row["trips"] > 0 for row in classes.values())
    assert rewards["budget_held"] and rewards["balances_match"] and 0 < rewards["paid"] <= terms.budget
    assert rewards["paid"] + rewards["remaining"] == terms.budget
    paid_claims = sum(row["claimed_trips"] for row in classes.values())
    assert rewards["claims_paid"] == paid_claims == rewards["claims_sent"] - rewards["claims_refused"]
    assert rewards["remaining"] == 0  # the budget ran out: the last claim was paid what remained, no more
    scanned = result["privacy_scan"]
    assert scanned["forms"] > 1_000 and scanned["found"] == 0, scanned


def _one_sample_trip(lat: int, lon: int, speeds: tuple[int, int], t_s: int) -> Trip:
    telemetry = [TelemetrySample(t_s, (lat, lon, speeds[0])), TelemetrySample(t_s + 1, (lat + 1, lon + 1, speeds[1]))]
    samples = [Sample(speed * 10, 13_890, 0, t_s % 86_400) for speed in speeds]
    return Trip(0, "normal", telemetry, samples, compute_features(samples), 0)


def _planted_forms(lat: int, lon: int, speeds: tuple[int, int], t_s: int) -> list[bytes]:
    """Every form of the first sample the scan must catch, written out here independently of sample_forms."""
    forms = []
    for value in (lat, lon):
        forms += [str(value).encode(), f"{value / 1e7:.7f}".encode(), struct.pack(">d", value / 1e7),
                  struct.pack("<d", value / 1e7)]
    forms += [struct.pack(fmt, lat, lon) for fmt in (">2i", "<2i", ">2q", "<2q")]
    forms += [str(t_s).encode(), struct.pack(">q", t_s), struct.pack("<q", t_s),
              struct.pack(">3q", lat, lon, speeds[0]), f"{speeds[0]},{speeds[1]}".encode()]
    return forms


def test_the_scan_finds_each_form_of_a_sample_planted_alone_and_nothing_in_a_clean_dump():
    rng = random.Random(7)
    lat, lon, speeds, t_s = 484_123_456, 100_654_321, (1_234, 1_567), 1_772_435_201
    forms = sample_forms([_one_sample_trip(lat, lon, speeds, t_s)])
    clean = [rng.randbytes(4_096) for _ in range(20)]  # blocks, proofs: bytes that hold no simulated value
    assert scan(forms, clean) == []
    planted = _planted_forms(lat, lon, speeds, t_s)
    assert set(planted) <= forms
    for form in planted:  # text and binary forms alike, each planted alone (quoted) amid random bytes
        dump = clean[:10] + [clean[10][:1_000] + b'"' + form + b'"' + clean[10][1_000:]] + clean[11:]
        assert form in scan(forms, dump), form
    text = str(lat).encode()
    assert scan(forms, [b"7" + text + b"3"]) == []  # inside a longer number (an AnonCreds proof's digits)
    assert scan(forms, [b"'hash': 'a" + text + b"f0'", b"time_ns: 17" + text]) == []  # in hex, in a longer time
    assert scan(forms, [b'{"lat":' + text + b"}", b"x" + text]) == [text]


def test_a_round_value_is_caught_by_its_other_forms_not_by_two_bytes_after_zeros():
    # the 200-car run's one hit: a longitude of exactly 10.0 deg (the city's west edge) as float64 LE is
    # 00 00 00 00 00 00 24 40, found inside an ezkl proof after a zero element: not a leak
    lat, lon, speeds, t_s = 484_123_456, 100_000_000, (1_234, 1_567), 1_772_435_201
    forms = sample_forms([_one_sample_trip(lat, lon, speeds, t_s)])
    weak = struct.pack("<d", lon / 1e7)
    assert weak == bytes.fromhex("0000000000002440") and weak not in forms
    proof = random.Random(5).randbytes(2_000) + bytes(32) + b"\x24\x40" + random.Random(6).randbytes(2_000)
    assert scan(forms, [proof]) == []
    for leak in (struct.pack("<2i", lat, lon), str(lon).encode(), b"10.0000000"):
        assert scan(forms, [proof + b'"' + leak + b'"']) == [leak], leak


def test_the_scan_finds_every_form_of_a_real_run_planted_in_a_large_dump(tmp_path):
    trips = []
    TrafficSim(tmp_path, 3, 0.05, seed=2).run(on_trip=trips.append)
    forms = sample_forms(trips)
    rng = random.Random(3)
    chosen = sorted(rng.sample(sorted(forms), 500))
    dump = bytearray(rng.randbytes(200_000))
    for offset, form in zip(range(100, len(dump), 390), chosen):
        dump[offset:offset + len(form) + 2] = b'"' + form + b'"'  # as a program would write it, quoted
    assert set(chosen) <= set(scan(forms, [bytes(dump)]))
    leak = b"tx..." + struct.pack("<2i", *trips[0].telemetry[5].values[:2]) + b"..." + \
        str(trips[0].telemetry[7].t_s).encode()
    assert len(scan(forms, [b"nothing here", leak])) >= 2
    assert scan(forms, [b"nothing here"]) == []
    assert scan(set(), [leak]) == []
