"""Simulated traffic against a live node: a sponsor's programme, a small fleet enrolled, each vehicle
committing to its own trips, owners proving and claiming through the SDK. Aggressive drivers earn less
than cautious ones, the budget holds, and nothing the ledger serves holds a simulated coordinate,
timestamp or speed (scanned for the exact values; the scan is shown to find a planted leak)."""

from __future__ import annotations

import struct

import pytest

pytest.importorskip("libsumo")

from cityledger.core.keys import PrivateKey  # noqa: E402
from cityledger.node.home import init_home, load_config  # noqa: E402
from cityledger.node.runner import Node  # noqa: E402
from cityledger.sim.rewards import Terms, run_rewarded_traffic, sample_forms, scan  # noqa: E402
from cityledger.sim.traffic import TrafficSim  # noqa: E402
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


def test_the_scan_finds_a_planted_sample(tmp_path):
    trips = []
    TrafficSim(tmp_path, 3, 0.05, seed=2).run(on_trip=trips.append)
    forms = sample_forms(trips)
    lat, lon, speed = trips[0].telemetry[5].values
    leak = b"tx..." + struct.pack("<2i", lat, lon) + b"..." + str(trips[0].telemetry[7].t_s).encode()
    assert len(scan(forms, [b"nothing here", leak])) >= 2
    assert scan(forms, [b"nothing here"]) == []
