"""`cityledger bench --engine cometbft`: the ledger on a local CometBFT network against CometBFT's kvstore.

One round drives four networks in turn, each on the loopback of this machine with the same
consensus settings and the same load: the ledger with --validators validators, CometBFT's built-in
kvstore app (`--proxy_app=kvstore`, the bound CometBFT itself sets here) with as many, and both
again with one validator. --rounds rounds (default 3) run one after the other and every figure is
the median over them: a single run of a few seconds on a shared machine swings by 20 % or more. The load is pre-built (signing and the request bodies are not timed): signed bank transfers spread over
many senders for the ledger, and txs of the same count and byte size for kvstore. Txs go in
JSON-RPC batches of broadcast_tx_async, each sender's to one node (nonces stay in order), spread
over the validators, with at most --window txs submitted and not yet committed.

The last stdout line is JSON:
  tx_per_s, p50_finality_ms, p99_finality_ms    the ledger, --validators validators
  kvstore_tx_per_s, kvstore_p50_finality_ms, kvstore_p99_finality_ms
  ratio_to_kvstore                              median over the rounds of tx_per_s / kvstore_tx_per_s
  round_ratios, rounds                          each round's ratio, and how many rounds ran
  one_validator: the same figures with one validator
Finality of a tx: from just before its batch is posted to when a block holding it is seen
committed on validator0 (polled every POLL_S); throughput: txs over the time from the first post
to the last commit.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)

POLL_S = 0.02
BATCH_TXS = 250
RUN_TIMEOUT_S = 600
DEFAULT_TIMEOUTS_MS = (1000, 300, 300, 100)  # propose, prevote, precommit, commit
# Txs in flight. On the 2-core machine the ledger's p99 finality stays near 2 s up to about this
# many; more raises both apps' throughput a little and the ledger's finality a lot (docs/BENCHMARKS.md).
DEFAULT_WINDOW = 800


@dataclass
class RunResult:
    """What one network did with the load."""

    app: str
    validators: int
    txs: int
    tx_bytes: int
    seconds: float
    finality_ms: list[float]
    blocks: int
    failed: int = 0

    @property
    def tx_per_s(self) -> float:
        return self.txs / self.seconds if self.seconds else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.finality_ms)
        return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))] if ordered else 0.0


@dataclass
class _Tracker:
    """Sees blocks commit on one node and notes when each awaited tx did."""

    rpc: object
    start_height: int
    submitted_at: dict[bytes, float] = field(default_factory=dict)
    committed_at: dict[bytes, float] = field(default_factory=dict)
    heights: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def run(self) -> None:
        try:
            height = self.start_height + 1
            while not self.stop.is_set():
                try:
                    block = self.rpc.call("block", height=str(height))
                except BenchRpcError as exc:
                    if _NOT_YET not in str(exc):
                        raise
                    time.sleep(POLL_S)
                    continue
                now = time.perf_counter()
                txs = block["block"]["data"]["txs"] or []
                ids = [hashlib.sha256(base64.b64decode(tx)).digest() for tx in txs]
                with self.lock:
                    for tx_id in ids:
                        self.committed_at.setdefault(tx_id, now)
                self.heights.append(height)
                height += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the runner
            self.error = exc

    def count(self) -> int:
        with self.lock:
            return len(self.committed_at)


def make_kvstore_load(count: int, tx_bytes: int) -> list[bytes]:
    """count distinct 'key=value' txs of tx_bytes bytes each (kvstore's format)."""
    txs = []
    for index in range(count):
        key = f"bench{index:09d}".encode()
        txs.append(key + b"=" + b"v" * max(1, tx_bytes - len(key) - 1))
    return txs


def make_ledger_load(chain_id: str, funder, count: int, senders: int) -> tuple[list[bytes], list[list[bytes]]]:
    """Funding txs, and per-sender ordered transfers (pre-signed)."""
    from ..core.keys import PrivateKey
    from ..core.tx import build_tx
    from ..modules.bank import MultiSend, Output, Transfer

    keys = [PrivateKey.generate() for _ in range(senders)]
    funding = []
    for start in range(0, senders, 200):
        outputs = [Output(k.address(), 10_000_000) for k in keys[start:start + 200]]
        funding.append(build_tx(chain_id, [funder], len(funding), [MultiSend(outputs)]))
    sink = PrivateKey.generate().address()
    per_sender = [[] for _ in keys]
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("signing transfers", total=count)
        for index in range(count):
            sender = index % senders
            per_sender[sender].append(build_tx(chain_id, [keys[sender]], len(per_sender[sender]),
                                               [Transfer(sink, 1)]))
            progress.advance(task)
    return funding, per_sender


def _interleave(streams: list[list[bytes]], nodes: int) -> list[list[bytes]]:
    """Per node, the txs of its senders (sender i goes to node i % nodes), nonce by nonce."""
    queues: list[list[bytes]] = [[] for _ in range(nodes)]
    depth = max((len(s) for s in streams), default=0)
    for level in range(depth):
        for index, stream in enumerate(streams):
            if level < len(stream):
                queues[index % nodes].append(stream[level])
    return queues


def _make_network(root: Path, validators: int, builtin_app: str | None):
    from ..engines.cometbft.setup import ConsensusTimeouts
    from ..engines.cometbft.testnet import Testnet

    propose, prevote, precommit, commit = DEFAULT_TIMEOUTS_MS
    timeouts = ConsensusTimeouts(propose_ms=propose, prevote_ms=prevote, precommit_ms=precommit, commit_ms=commit,
                                 empty_block_interval_ms=1000)
    net = Testnet.create(root, validators=validators, timeouts=timeouts, snapshot_interval=0, api=False,
                         builtin_app=builtin_app)
    net.start()
    net.wait_for_height(2, timeout_s=60)
    return net


def _broadcast(rpc, txs: list[bytes]) -> None:
    answers = rpc.batch("broadcast_tx_async", [{"tx": base64.b64encode(tx).decode()} for tx in txs])
    refused = [a for a in answers if not isinstance(a, dict) or a.get("code", 0) != 0]
    if refused:
        raise RuntimeError(f"bench: {len(refused)} txs refused by CometBFT, first: {refused[0]}")


class BenchRpcError(RuntimeError):
    """A node answered the load generator's call with a JSON-RPC error."""


_NOT_YET = "must be less than or equal to the current blockchain height"  # CometBFT, for a future height


class _LoadRpc:
    """The load generator's JSON-RPC client: one keep-alive connection (the standard library's)
    and msgspec. The clients and the block watcher run on the machine whose throughput they
    measure, so they keep their own CPU small: an httpx request costs several times as much, and
    at thousands of txs a second the difference is CPU the validators do not get."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._timeout_s = timeout_s
        self._conn = http.client.HTTPConnection(*self._address, timeout=timeout_s)

    def post(self, body: bytes) -> Any:
        """POST a JSON-RPC body; the decoded answer (a retry on a fresh connection if it dropped)."""
        for attempt in (1, 2):
            try:
                self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
                reply = self._conn.getresponse()
                data = reply.read()
                break
            except (http.client.HTTPException, ConnectionError):
                self._conn.close()
                self._conn = http.client.HTTPConnection(*self._address, timeout=self._timeout_s)
                if attempt == 2:
                    raise
        if reply.status != 200:
            raise BenchRpcError(f"bench: HTTP {reply.status} from {self._address}: {data[:200]!r}")
        return msgspec.json.decode(data)

    def call(self, method: str, **params: Any) -> dict:
        answer = self.post(msgspec.json.encode({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}))
        if "error" in answer:
            error = answer["error"]
            raise BenchRpcError(f"{method}: {error.get('message', '')} {error.get('data', '')}".strip())
        return answer["result"]

    def close(self) -> None:
        self._conn.close()


def compute_broadcast_body(txs: list[bytes]) -> bytes:
    """The JSON-RPC batch of broadcast_tx_async calls that submits txs."""
    return msgspec.json.encode([{"jsonrpc": "2.0", "id": i, "method": "broadcast_tx_async",
                                 "params": {"tx": base64.b64encode(tx).decode()}} for i, tx in enumerate(txs)])


def _check_broadcast_answers(answers: Any, count: int) -> None:
    if isinstance(answers, dict):  # CometBFT answers a batch of one with a bare object
        answers = [answers]
    refused = [a for a in answers if "error" in a or a.get("result", {}).get("code", 0) != 0]
    if refused or len(answers) != count:
        raise RuntimeError(f"bench: {len(refused)} of {count} txs refused by CometBFT "
                           f"({len(answers)} answers), first: {refused[0] if refused else None}")


def _drive(net, queues: list[list[bytes]], window: int, label: str) -> tuple[float, _Tracker]:
    """Submit every queue's txs to its node under the window; return (seconds, tracker).

    Like the signing, the clients' own work is done before the clock starts: each batch's
    request body and tx ids are built up front."""
    plans = [[(compute_broadcast_body(queue[i:i + BATCH_TXS]),
               [hashlib.sha256(tx).digest() for tx in queue[i:i + BATCH_TXS]])
              for i in range(0, len(queue), BATCH_TXS)] for queue in queues]
    clients = [_LoadRpc(n.rpc_url) for n in net.nodes]
    with net.rpc(net.nodes[0].name) as rpc:
        start_height = rpc.status().height
    tracker = _Tracker(_LoadRpc(net.nodes[0].rpc_url), start_height)
    watcher = threading.Thread(target=tracker.run, name="bench-tracker", daemon=True)
    watcher.start()
    total = sum(len(q) for q in queues)
    positions = [0] * len(plans)
    submitted = 0
    started = time.perf_counter()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True, refresh_per_second=4) as progress:
            task = progress.add_task(label, total=total)
            while tracker.count() < total:
                if tracker.error is not None:
                    raise RuntimeError(f"bench: watching blocks failed: {tracker.error!r}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bench: {total - tracker.count()} txs not committed in {RUN_TIMEOUT_S}s")
                progress.update(task, completed=tracker.count())
                waiting = [i for i in range(len(plans)) if positions[i] < len(plans[i])]
                if not waiting or submitted - tracker.count() + BATCH_TXS > window:
                    time.sleep(POLL_S / 2)
                    continue
                node = min(waiting, key=lambda i: positions[i] / len(plans[i]))
                body, ids = plans[node][positions[node]]
                positions[node] += 1
                now = time.perf_counter()
                with tracker.lock:
                    for tx_id in ids:
                        tracker.submitted_at[tx_id] = now
                _check_broadcast_answers(clients[node].post(body), len(ids))
                submitted += len(ids)
        elapsed = max(tracker.committed_at.values()) - started
    finally:
        tracker.stop.set()
        watcher.join(timeout=10)
        for client in [*clients, tracker.rpc]:
            client.close()
    return elapsed, tracker


def _count_failures(net, heights: list[int]) -> int:
    """Txs committed with a non-zero code (the ledger rejected them in the block)."""
    failed = 0
    with net.rpc(net.nodes[0].name, timeout_s=60) as rpc:
        for height in heights:
            results = rpc.call("block_results", height=str(height)).get("txs_results") or []
            failed += sum(1 for r in results if int(r.get("code", 0)) != 0)
    return failed


def _wait_for_txs(net, txs: list[bytes], timeout_s: float = 120) -> None:
    with net.rpc(net.nodes[0].name) as rpc:
        deadline = time.monotonic() + timeout_s
        for tx in txs:
            tx_hash = base64.b64encode(hashlib.sha256(tx).digest()).decode()
            while True:
                try:
                    rpc.call("tx", hash=tx_hash)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError("bench: funding txs were not committed") from None
                    time.sleep(0.1)


def run_ledger(root: Path, validators: int, count: int, senders: int, window: int) -> RunResult:
    """The ledger's run: fund the senders, then the transfers under the window."""
    from ..core.keys import PrivateKey, scheme_from_name

    net = _make_network(root, validators, None)
    try:
        member = json.loads((root / "keys" / "member0.json").read_text())
        funder = PrivateKey(scheme_from_name(member["scheme"]), bytes.fromhex(member["seed"]))
        funding, streams = make_ledger_load(net.chain_id, funder, count, senders)
        with net.rpc(net.nodes[0].name) as rpc:
            _broadcast(rpc, funding)
        _wait_for_txs(net, funding)
        queues = _interleave(streams, validators)
        tx_bytes = round(sum(len(tx) for s in streams for tx in s) / count)
        seconds, tracker = _drive(net, queues, window, f"cityledger, {validators} validator(s)")
        failed = _count_failures(net, tracker.heights)
    finally:
        net.stop()
    return _result("cityledger", validators, count, tx_bytes, seconds, tracker, failed)


def run_kvstore(root: Path, validators: int, count: int, tx_bytes: int, window: int) -> RunResult:
    """CometBFT's kvstore with the same count and size of txs."""
    net = _make_network(root, validators, "kvstore")
    try:
        txs = make_kvstore_load(count, tx_bytes)
        queues = [txs[i::validators] for i in range(validators)]
        seconds, tracker = _drive(net, queues, window, f"kvstore, {validators} validator(s)")
        failed = _count_failures(net, tracker.heights)
    finally:
        net.stop()
    return _result("kvstore", validators, count, tx_bytes, seconds, tracker, failed)


def _result(app: str, validators: int, count: int, tx_bytes: int, seconds: float, tracker: _Tracker,
            failed: int) -> RunResult:
    finality = [(tracker.committed_at[tx_id] - at) * 1000 for tx_id, at in tracker.submitted_at.items()
                if tx_id in tracker.committed_at]
    return RunResult(app, validators, count, tx_bytes, seconds, finality, len(tracker.heights), failed)


def compute_summary(ledger: list[RunResult], kvstore: list[RunResult], ledger_1: list[RunResult],
                    kvstore_1: list[RunResult]) -> dict:
    """The JSON document: the --validators figures at the top level, one validator under one_validator.

    Each list holds one run per round (ledger and kvstore alternate); every figure is the median
    over the rounds, and the ratio the median of the rounds' ratios, so that one round disturbed
    by the shared machine does not decide the result."""

    def median(values: list[float]) -> float:
        return statistics.median(values)

    def figures(ours: list[RunResult], theirs: list[RunResult]) -> dict:
        ratios = [a.tx_per_s / b.tx_per_s for a, b in zip(ours, theirs) if b.tx_per_s]
        return {
            "tx_per_s": round(median([r.tx_per_s for r in ours]), 1),
            "p50_finality_ms": round(median([r.percentile_ms(0.50) for r in ours]), 1),
            "p99_finality_ms": round(median([r.percentile_ms(0.99) for r in ours]), 1),
            "kvstore_tx_per_s": round(median([r.tx_per_s for r in theirs]), 1),
            "kvstore_p50_finality_ms": round(median([r.percentile_ms(0.50) for r in theirs]), 1),
            "kvstore_p99_finality_ms": round(median([r.percentile_ms(0.99) for r in theirs]), 1),
            "ratio_to_kvstore": round(median(ratios), 3) if ratios else None,
            "round_ratios": [round(ratio, 3) for ratio in ratios],
            "blocks": sum(r.blocks for r in ours),
            "failed_txs": sum(r.failed for r in ours),
        }

    first = ledger[0]
    summary = {"validators": first.validators, "txs": first.txs, "tx_bytes": first.tx_bytes, "rounds": len(ledger),
               **figures(ledger, kvstore)}
    if ledger_1 and kvstore_1:
        summary["one_validator"] = figures(ledger_1, kvstore_1)
    summary.update({"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%d"), "cometbft": _cometbft_version()})
    return summary


def _cometbft_version() -> str:
    import subprocess

    from ..engines.cometbft.setup import find_cometbft

    return subprocess.run([str(find_cometbft()), "version"], capture_output=True, text=True).stdout.strip()


def _print_table(runs: list[RunResult]) -> None:
    table = Table(title="cityledger on CometBFT vs CometBFT kvstore (same load)", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for column in ("app", "validators", "txs", "tx bytes", "tx/s", "p50 ms", "p99 ms", "blocks", "failed"):
        table.add_column(column, justify="right" if column != "app" else "left", no_wrap=True)
    for run in runs:
        table.add_row(run.app, str(run.validators), str(run.txs), str(run.tx_bytes), f"{run.tx_per_s:.0f}",
                      f"{run.percentile_ms(0.5):.0f}", f"{run.percentile_ms(0.99):.0f}", str(run.blocks),
                      str(run.failed))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last stdout line is the JSON result."""
    parser = argparse.ArgumentParser(prog="cityledger bench --engine cometbft", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("cometbft",), default="cometbft", help=argparse.SUPPRESS)
    parser.add_argument("--validators", type=int, default=4, help="validators of the main networks")
    parser.add_argument("--txs", type=int, default=8_000, help="txs per network")
    parser.add_argument("--senders", type=int, default=400, help="distinct sending accounts (ledger)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                        help="at most this many txs submitted and not yet committed (clients in flight)")
    parser.add_argument("--skip-one-validator", action="store_true", help="only the --validators networks")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each network, ledger and kvstore alternating; figures are medians")
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    args = parser.parse_args(argv)
    if (not 1 <= args.validators <= 16 or args.txs < 1 or args.senders < 1 or args.window < BATCH_TXS
            or args.rounds < 1):
        parser.error(f"expected 1 <= --validators <= 16, --txs, --senders and --rounds >= 1, "
                     f"--window >= {BATCH_TXS}")
    runs: list[RunResult] = []
    by_size: dict[tuple[str, int], list[RunResult]] = {}
    with tempfile.TemporaryDirectory(prefix="cityledger-bench-") as tmp:
        sizes = [args.validators] + ([] if args.skip_one_validator or args.validators == 1 else [1])
        for round_index in range(args.rounds):
            for validators in sizes:
                folder = Path(tmp) / f"round{round_index}"
                ledger = run_ledger(folder / f"ledger-{validators}", validators, args.txs, args.senders, args.window)
                kvstore = run_kvstore(folder / f"kvstore-{validators}", validators, args.txs, ledger.tx_bytes,
                                      args.window)
                runs += [ledger, kvstore]
                by_size.setdefault(("cityledger", validators), []).append(ledger)
                by_size.setdefault(("kvstore", validators), []).append(kvstore)
    summary = compute_summary(by_size[("cityledger", args.validators)], by_size[("kvstore", args.validators)],
                              by_size.get(("cityledger", 1), []), by_size.get(("kvstore", 1), []))
    if not args.json:
        _print_table(runs)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
