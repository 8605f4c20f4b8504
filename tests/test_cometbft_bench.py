"""`cityledger bench --engine cometbft` end to end on a small load (the figures themselves are in docs/BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest

from cityledger.tools import bench_cometbft

pytestmark = [pytest.mark.cometbft, pytest.mark.slow]


def test_bench_prints_the_figures_on_its_last_line(capsys):
    assert bench_cometbft.main(["--engine", "cometbft", "--validators", "1", "--txs", "300", "--senders", "20",
                                "--window", "300", "--rounds", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name in ("tx_per_s", "p50_finality_ms", "p99_finality_ms", "kvstore_tx_per_s"):
        assert result[name] > 0, result
    assert result["failed_txs"] == 0 and result["txs"] == 300 and result["validators"] == 1
    assert result["p50_finality_ms"] <= result["p99_finality_ms"]
    assert result["rounds"] == 2 and len(result["round_ratios"]) == 2
    low, high = sorted(result["round_ratios"])
    assert low <= result["ratio_to_kvstore"] <= high  # the median of two rounds lies between them


def test_interleave_keeps_each_senders_txs_in_order_on_one_node():
    streams = [[b"a0", b"a1", b"a2"], [b"b0", b"b1"], [b"c0"]]
    assert bench_cometbft._interleave(streams, 2) == [[b"a0", b"c0", b"a1", b"a2"], [b"b0", b"b1"]]


def test_kvstore_load_has_the_size_and_format_asked():
    txs = bench_cometbft.make_kvstore_load(3, 170)
    assert len(set(txs)) == 3 and all(len(tx) == 170 and tx.count(b"=") == 1 for tx in txs)
