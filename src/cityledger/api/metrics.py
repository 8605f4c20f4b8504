"""Prometheus metrics: the engine's counters read at scrape time, and the API's own check failures."""

from __future__ import annotations

from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _NodeCollector:
    """Reads the node's figures when Prometheus scrapes, so nothing is updated on the hot path."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self._read = read

    def collect(self) -> Iterator:
        figures = self._read()
        yield CounterMetricFamily("cityledger_blocks_committed", "Blocks committed by this process",
                                  value=figures["blocks"])
        yield CounterMetricFamily("cityledger_txs_committed", "Transactions committed by this process",
                                  value=figures["txs"])
        yield GaugeMetricFamily("cityledger_height", "Last committed height", value=figures["height"])
        yield GaugeMetricFamily("cityledger_mempool_size", "Transactions waiting in the mempool",
                                value=figures["mempool_size"])
        yield GaugeMetricFamily("cityledger_mempool_bytes", "Bytes of transactions in the mempool",
                                value=figures["mempool_bytes"])
        yield GaugeMetricFamily("cityledger_last_block_ms", "Time to finalize and commit the last block",
                                value=figures["last_block_ms"])


class ApiMetrics:
    """One registry per API instance (so tests can run several apps in one process)."""

    def __init__(self, read_node: Callable[[], dict[str, float]]) -> None:
        disable_created_metrics()  # the *_created series only add noise for a node's counters
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_NodeCollector(read_node))
        self._failures = Counter("cityledger_check_failures", "Transactions rejected at submission",
                                 ["codespace", "code"], registry=self.registry)
        self._received = Counter("cityledger_api_txs_received", "Transactions received through the API",
                                 registry=self.registry)

    def count_received(self, n: int) -> None:
        self._received.inc(n)

    def count_failure(self, codespace: str, code: int) -> None:
        self._failures.labels(codespace or "none", str(code)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)


def read_engine(node) -> dict[str, float]:
    """The figures a node reports (app/abc.Engine declares every one)."""
    engine = node.engine
    return {"blocks": engine.blocks_committed, "txs": engine.txs_committed, "height": node.store.last_height(),
            "mempool_size": engine.pending_count(), "mempool_bytes": engine.pending_bytes(),
            "last_block_ms": engine.last_block_ms}
