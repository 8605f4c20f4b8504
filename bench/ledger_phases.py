"""Where a solo node's own process spends its time per tx: admission and each phase of a block.

One thread, no verifier workers: signatures are marked verified up front (as the workers would),
so what is timed is only the node's serial work, phase by phase (wall time per tx, perf_counter):
check_tx (nonce and execution against the check state), the rest of admission (decoding, mempool),
deliver (re-execution in the block), the state tree's apply, the SQLite commit, and the rest of
the block. Blocks hold --block-txs txs from --senders senders, so the number of distinct keys a
block changes (what the tree and SQLite pay for) follows from those two.

Run: PYTHONPATH=src python bench/ledger_phases.py [--txs 30000] [--block-txs 5000] [--senders 2000] [--cpu]
--cpu times with the thread's CPU clock instead (the harness is one thread), which holds on a loaded
machine. The script runs against any checkout's code: PYTHONPATH=<other checkout>/src.
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from cityledger.core.hashing import sha256
from cityledger.node.runner import tune_gc
from cityledger.tools.bench import _fresh_node, make_load


_clock = time.perf_counter  # every timing, the wrappers' included (--cpu: time.thread_time)


def _timed(owner, name: str, totals: dict[str, float], label: str) -> None:
    """Wrap owner.name so that its wall time adds up under totals[label]."""
    function = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = _clock()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + _clock() - started

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--txs", type=int, default=30_000, help="timed transfers (after one warm-up block)")
    parser.add_argument("--block-txs", type=int, default=5_000, help="txs per block")
    parser.add_argument("--senders", type=int, default=2_000, help="distinct sending accounts")
    parser.add_argument("--cpu", action="store_true", help="the thread's CPU time, not wall time")
    args = parser.parse_args(argv)
    global _clock
    _clock = time.thread_time if args.cpu else time.perf_counter
    totals: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        node, funder = _fresh_node(Path(tmp), args.block_txs)
        engine, app = node.engine, node.app
        engine.config.verify_workers = 0
        funding, txs = make_load(node.config.chain_id, funder, args.txs + args.block_txs, args.senders)
        engine.submit_batch(funding)
        while engine.produce_block():
            pass
        tune_gc()

        def admit(chunk: list[bytes]) -> None:
            for raw in chunk:
                tx_id = sha256(raw)
                decoded = app.precheck(raw, signatures_verified=True, tx_id=tx_id)  # a verifier worker's part
                result = engine._admit(tx_id, raw, decoded)
                if not result.result.ok:
                    raise RuntimeError(f"bench: tx refused: {result.result.log}")

        admit(txs[:args.block_txs])  # warm-up block: caches filled as in a running node
        engine.produce_block()
        txs = txs[args.block_txs:]
        _timed(app, "check_tx", totals, "check_tx")
        _timed(app, "_deliver", totals, "deliver")
        _timed(app.store.tree, "apply", totals, "tree_apply")
        _timed(app.store, "commit_block", totals, "sqlite_commit")
        admission = block = 0.0
        for start in range(0, args.txs, args.block_txs):
            started = _clock()
            admit(txs[start:start + args.block_txs])
            admitted = _clock()
            engine.produce_block()
            admission += admitted - started
            block += _clock() - admitted
        node.stop()
    per_tx = {name: round(seconds / args.txs * 1e6, 1) for name, seconds in totals.items()}
    result = {
        "us_per_tx": round((admission + block) / args.txs * 1e6, 1),
        "admission_us_per_tx": round(admission / args.txs * 1e6, 1),
        "block_us_per_tx": round(block / args.txs * 1e6, 1),
        "phases_us_per_tx": per_tx,
        "admission_other_us_per_tx": round(admission / args.txs * 1e6 - per_tx["check_tx"], 1),
        "block_other_us_per_tx": round(block / args.txs * 1e6 - per_tx["deliver"] - per_tx["tree_apply"]
                                       - per_tx["sqlite_commit"], 1),
        "serial_bound_tx_per_s": round(args.txs / (admission + block)),
        "workload": {"txs": args.txs, "block_txs": args.block_txs, "senders": args.senders},
        "clock": "thread CPU" if args.cpu else "wall",
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
    }
    for name, value in result.items():
        print(f"{name:>28}: {value}")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
