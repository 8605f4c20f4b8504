"""`cityledger bench telemetry`: a small run end to end, and its argument checks."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cityledger.cli.main import app
from cityledger.offchain.telemetry.broker import find_binary

runner = CliRunner()


@pytest.mark.slow
@pytest.mark.skipif(find_binary("mosquitto") is None, reason="mosquitto not installed: run scripts/install_mosquitto.sh")
def test_bench_telemetry_stores_and_anchors_every_message_once():
    result = runner.invoke(app, ["bench", "telemetry", "--devices", "4", "--owners", "2", "--messages", "200",
                                 "--publishers", "2", "--interval", "1", "--gateways", "1", "--pairs", "2", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["messages"] == figures["stored"] == figures["anchored_records"] == 200 and figures["refused"] == {}
    assert figures["anchor_txs_per_interval"] == 1 and figures["intervals"] >= 1
    assert figures["shard_roots_per_interval"] == 1
    assert abs(figures["samples_per_s"] - 10 * figures["msgs_per_s"]) <= 10  # ten 1 Hz samples a message
    # Two pairs, each a raw round and a gateway round from empty folders (the second stores all 200
    # again: nothing of the first round's state or session is left to refuse them as replays).
    pairs = figures["pairs"]
    assert len(pairs) == 2 and all(pair["msgs_per_s"] > 0 and pair["raw_broker_msgs_per_s"] > 0 for pair in pairs)
    assert figures["ratio_to_raw_min"] == min(pair["ratio_to_raw"] for pair in pairs) <= figures["ratio_to_raw"]
    assert figures["ratio_to_raw"] <= max(pair["ratio_to_raw"] for pair in pairs)
    assert 0 <= figures["cpu_steal_pct"] <= 100  # read from /proc/stat over the pairs
    assert min(figures["ed25519_verify_us"]) > 0  # the machine's speed before and after, beside its figures
    for name in ("msgs_per_s", "raw_broker_msgs_per_s", "raw_broker_qos0_msgs_per_s", "p99_ingest_ms",
                 "cpu_us_per_msg", "cpu_us_per_msg_verify_workers"):
        assert figures[name] > 0, name


@pytest.mark.slow
@pytest.mark.skipif(find_binary("mosquitto") is None, reason="mosquitto not installed: run scripts/install_mosquitto.sh")
def test_bench_telemetry_over_two_gateway_processes_with_a_longer_window():
    result = runner.invoke(app, ["bench", "telemetry", "--devices", "8", "--owners", "4", "--messages", "200",
                                 "--publishers", "1", "--interval", "5", "--gateways", "2", "--window-s", "30",
                                 "--pairs", "1", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["messages"] == figures["stored"] == figures["anchored_records"] == 200 and figures["refused"] == {}
    assert figures["gateways"] == 2 and figures["window_s"] == 30
    # The gateways hand their roots to one anchoring point: one tx per interval for the fleet, over both.
    # Intervals follow each gateway's clock: 5 s, so that a gateway slowed by a busy machine (CI) still
    # stores its share within the other's interval.
    assert figures["anchor_txs_per_interval"] == 1 and figures["shard_roots_per_interval"] == 2
    assert abs(figures["samples_per_s"] - 30 * figures["msgs_per_s"]) <= 30  # thirty 1 Hz samples a message
    for name in ("cpu_us_per_msg_gateway_process", "cpu_us_per_msg_verify_workers"):
        assert figures[name] > 0, name


@pytest.mark.parametrize("args, field", [(["--devices", "0"], "--devices"), (["--owners", "50"], "--owners"),
                                         (["--gateways", "0"], "--gateways"), (["--gateways", "17"], "--gateways"),
                                         (["--window-s", "0"], "--window-s"), (["--window-s", "61"], "--window-s"),
                                         (["--messages", "3"], "--messages"), (["--publishers", "0"], "--publishers"),
                                         (["--interval", "0"], "--interval"),
                                         (["--verify-workers", "-1"], "--verify-workers"),
                                         (["--pairs", "0"], "--pairs"), (["--pairs", "21"], "--pairs"),
                                         (["--verify-workers", "65"], "--verify-workers")])
def test_bench_telemetry_refuses_bad_arguments(args, field):
    result = runner.invoke(app, ["bench", "telemetry", *args])
    assert result.exit_code == 2 and field in result.output
