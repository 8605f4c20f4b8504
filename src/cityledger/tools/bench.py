"""`cityledger bench`: ledger throughput, in-process and through the REST API.

Prints a human summary and, last, one JSON line with:
  tx_per_s_inprocess   signed transfers committed per second, solo engine, in-process
  tx_per_s_api         the same load through POST /txs/batch of a real node (uvicorn) over loopback
  p99_commit_latency_ms  submit-to-commit latency of txs in the in-process run, 99th percentile
  ed25519_verify_per_s   the raw signature-verification rate of the same library (one core), this run
  app_cpu_us_per_tx / workers_cpu_us_per_tx  CPU per tx of the node's process and of its verifier
                       workers in the in-process run (steady on a loaded machine, unlike the rate)
  load_avg_1m          the machine's load average when the in-process run started
The ratio of the first to the last shows how close the ledger runs to the per-core signature bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from ..core.keys import PrivateKey
from ..core.tx import build_tx
from ..modules.bank import Transfer

console = Console(stderr=True)


def make_load(chain_id: str, funder: PrivateKey, n_txs: int, n_senders: int):
    """Funding txs (funder -> each sender) and n_txs pre-signed transfers spread over the senders."""
    from ..modules.bank import MultiSend, Output

    senders = [PrivateKey.generate() for _ in range(n_senders)]
    funding = []
    for start in range(0, n_senders, 200):
        outputs = [Output(s.address(), 10_000_000) for s in senders[start:start + 200]]
        funding.append(build_tx(chain_id, [funder], len(funding), [MultiSend(outputs)]))
    sink = PrivateKey.generate().address()
    per_sender = -(-n_txs // n_senders)
    txs = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("signing transfers", total=n_txs)
        for nonce in range(per_sender):
            for sender in senders:
                if len(txs) == n_txs:
                    break
                txs.append(build_tx(chain_id, [sender], nonce, [Transfer(sink, 1)]))
                progress.advance(task)
    return funding, txs


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Raw Ed25519 verifications per second with the ledger's verifier (ed25519-zebra), one core."""
    from ..core.keys import verify_ed25519_zip215

    key = PrivateKey.generate()
    public, message = key.public_key.key, os.urandom(150)
    signature = key.sign(message)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(500):
            verify_ed25519_zip215(public, message, signature)
        count += 500
    return count / (time.perf_counter() - started)


def _fresh_node(home: Path, block_txs: int):
    from ..node.home import init_home, load_config, load_key
    from ..node.runner import Node

    init_home(home, members=1)
    config = load_config(home)
    config.solo.max_block_txs = block_txs
    config.solo.mempool.max_txs = 1_000_000
    config.solo.mempool.max_bytes = 1 << 31
    node = Node(config)
    return node, load_key(next((home / "keys").glob("*.json")))


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    """CPU seconds (user + system) of this process, or of its reaped children."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def bench_inprocess(n_txs: int, n_senders: int, block_txs: int) -> dict:
    """Submit pre-signed transfers in batches while the engine's block loop commits them, as a node runs."""
    workers_cpu = _cpu_s(resource.RUSAGE_CHILDREN)  # the verifier workers count once reaped (node.stop)
    with tempfile.TemporaryDirectory() as tmp:
        node, funder = _fresh_node(Path(tmp), block_txs)
        engine = node.engine
        engine.config.block_interval_ms = 100
        funding, txs = make_load(node.config.chain_id, funder, n_txs, n_senders)
        engine.submit_batch(funding)
        while engine.produce_block():
            pass
        committed_before, height_before = engine.txs_committed, node.store.last_height()
        submitted: list[tuple[float, list[bytes]]] = []
        node.start()
        load, cpu, started = os.getloadavg()[0], _cpu_s(), time.perf_counter()
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("in-process: submit and commit", total=n_txs)
            for start in range(0, n_txs, block_txs):
                batch = txs[start:start + block_txs]
                results = engine.submit_batch(batch)
                failed = [r.result.log for r in results if not r.result.ok]
                if failed:
                    raise RuntimeError(f"bench: {len(failed)} txs rejected, first: {failed[0]}")
                submitted.append((time.perf_counter(), [r.tx_id for r in results]))
                progress.update(task, completed=engine.txs_committed - committed_before)
            while engine.txs_committed - committed_before < n_txs:
                time.sleep(0.005)
                progress.update(task, completed=engine.txs_committed - committed_before)
        elapsed, cpu = time.perf_counter() - started, _cpu_s() - cpu
        engine.stop()
        committed = engine.txs_committed - committed_before
        latencies = _commit_latencies(node.store, engine.commit_times, submitted, height_before)
        node.app.check_invariants()
        node.stop()
    workers_cpu = _cpu_s(resource.RUSAGE_CHILDREN) - workers_cpu
    return {"tx_per_s_inprocess": round(committed / elapsed, 1), "txs": committed, "seconds": round(elapsed, 3),
            "app_cpu_us_per_tx": round(cpu / committed * 1e6, 1),
            "workers_cpu_us_per_tx": round(workers_cpu / committed * 1e6, 1), "load_avg_1m": round(load, 2),
            "blocks": node.store.last_height() - height_before,
            "p99_commit_latency_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1)}


def _commit_latencies(store, commit_times, submitted, height_before: int) -> list[float]:
    """Per tx: from the moment its batch was accepted to the moment its block was committed."""
    committed_at = dict(commit_times)
    out = []
    for accepted_at, tx_ids in submitted:
        for tx_id in tx_ids:
            height, _ = store.find_tx(tx_id)
            out.append(max(0.0, committed_at[height] - accepted_at) * 1000)
    return sorted(out)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_api(n_txs: int, n_senders: int, batch_txs: int) -> dict:
    """The same load through POST /txs/batch of a node started as a subprocess."""
    import httpx

    from ..node.home import init_home, load_key

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        port = _free_port()
        init_home(home, members=1, port=port)
        config_text = (home / "config.toml").read_text()
        config_text = config_text.replace("max_txs = 100000", "max_txs = 1000000")
        (home / "config.toml").write_text(config_text.replace("max_bytes = 268435456", "max_bytes = 2147483648"))
        funder = load_key(next((home / "keys").glob("*.json")))
        genesis = json.loads((home / "genesis.json").read_text())
        funding, txs = make_load(genesis["chain_id"], funder, n_txs, n_senders)
        proc = subprocess.Popen([sys.executable, "-m", "cityledger.cli.main", "up", "--home", str(home)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=120) as client:
                _wait_healthy(client)
                _post_batches(client, funding)
                _wait_committed(client, funding[-1])
                started = time.perf_counter()
                with Progress(console=console, transient=True) as progress:
                    task = progress.add_task("through the API: submit and commit", total=n_txs)
                    for start in range(0, n_txs, batch_txs):
                        _post_batches(client, txs[start:start + batch_txs])
                        progress.advance(task, len(txs[start:start + batch_txs]))
                    _wait_committed(client, txs[-1])
                elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"tx_per_s_api": round(n_txs / elapsed, 1), "api_seconds": round(elapsed, 3)}


def _wait_healthy(client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get("/health").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError("bench: node did not become healthy within 60 s")


def _post_batches(client, txs: list[bytes]) -> None:
    response = client.post("/txs/batch", json={"txs": [tx.hex() for tx in txs]})
    if response.status_code != 200:
        raise RuntimeError(f"bench: batch rejected: {response.status_code} {response.text[:300]}")
    body = response.json()
    bad = [r for r in body["results"] if r["code"] != 0]
    if bad:
        raise RuntimeError(f"bench: {len(bad)} txs rejected, first: {bad[0]}")


def _wait_committed(client, tx: bytes) -> None:
    from ..core.hashing import compute_tx_id

    tx_id = compute_tx_id(tx).hex()
    response = client.get(f"/txs/{tx_id}/wait", params={"timeout_s": 120})
    if response.status_code != 200 or response.json().get("status") != "committed":
        raise RuntimeError(f"bench: tx {tx_id} not committed: {response.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    """Run the ledger benchmark; the last stdout line is the JSON result."""
    parser = argparse.ArgumentParser(prog="cityledger bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    parser.add_argument("--txs", type=int, default=40_000, help="transfers per run")
    parser.add_argument("--senders", type=int, default=2_000, help="distinct sending accounts")
    parser.add_argument("--block-txs", type=int, default=10_000, help="max txs per block / per API batch")
    parser.add_argument("--skip-api", action="store_true", help="only the in-process figure")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[argv.index("--engine") + 1:][:1] == ["cometbft"] if "--engine" in argv else False:
        from .bench_cometbft import main as cometbft_main

        return cometbft_main(argv)
    parser.add_argument("--engine", choices=["solo", "cometbft"], default="solo", help="engine to measure")
    args = parser.parse_args(argv)
    verify_rate = measure_verify_rate()
    result = {"ed25519_verify_per_s": round(verify_rate, 1)}
    result.update(bench_inprocess(args.txs, args.senders, args.block_txs))
    if not args.skip_api:
        result.update(bench_api(args.txs, args.senders, args.block_txs))
    result["ratio_inprocess_to_verify"] = round(result["tx_per_s_inprocess"] / verify_rate, 3)
    result.update({"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
                   "date": time.strftime("%Y-%m-%d")})
    if not args.json:
        for name, value in result.items():
            console.print(f"{name:>28}: {value}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
