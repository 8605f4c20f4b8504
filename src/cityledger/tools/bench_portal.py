"""`cityledger bench portal`: how long the explorer's block list takes to render on a long chain.

It builds (or reuses, with --home) a solo chain of --blocks real blocks, one transfer each, made by
the node's own engine, then renders the explorer's pages in-process (the ASGI app, no network):
the newest page of the block list, a page from the chain's middle, the oldest page, and a block's
page. The baseline, measured in the same run, is the oldest page (PAGE_BLOCKS blocks near height 1):
the ratio newest/oldest shows whether the list's cost grows with the chain (it reads one block per
row by its height, the blocks table's primary key). It also weighs the explorer's first load
(HTML, CSS and JS of the block list page).

Run: cityledger bench portal [--blocks 100000] [--home PATH] [--samples 50] [--json]
The last line of output is one JSON object:
  blocks, list_newest_ms, list_middle_ms, list_oldest_ms, block_page_ms   each {"p50", "p95"}
  ratio_newest_to_oldest (p50s), first_load_bytes, samples, build_s (0 if reused), machine, python, date
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ..api import create_app
from ..api.explorer.pages import PAGE_BLOCKS
from ..core.tx import build_tx
from ..modules.bank import Transfer
from ..node.home import init_home, load_config, load_key
from ..node.runner import Node

DEFAULT_BLOCKS = 100_000
BUDGET_MS = 300  # the bound on the block list's render time
MAX_FIRST_LOAD_BYTES = 1_000_000  # the bound on a page's first load
PROGRESS_EVERY = 5_000  # blocks between progress lines while building


def build_chain(home: Path, blocks: int) -> tuple[Node, float]:
    """A solo node on `home` with at least `blocks` blocks (made now if missing); (node, seconds spent)."""
    if not (home / "config.toml").exists():
        init_home(home, issuers=False)
    node = Node(load_config(home))
    sender = load_key(home / "keys" / "city-government.json")
    engine, started = node.engine, time.perf_counter()
    nonce = node.store.last_height()  # every block holds one transfer of the sender's, from nonce 0
    chain_id, to = node.config.chain_id, b"\x42" * 20
    while node.store.last_height() < blocks:
        engine.submit(build_tx(chain_id, [sender], nonce, [Transfer(to, 1)]))
        if engine.produce_block() is None:
            raise RuntimeError(f"block {node.store.last_height() + 1}: the engine made no block")
        nonce += 1
        if nonce % PROGRESS_EVERY == 0:
            print(f"built {nonce} blocks", file=sys.stderr)
    return node, time.perf_counter() - started


def timed(client, path: str, samples: int) -> dict[str, float]:
    """p50 and p95 of GET path, in milliseconds (each answer checked)."""
    spent = []
    for _ in range(samples):
        started = time.perf_counter()
        answer = client.get(path)
        spent.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{path}: answered {answer.status_code}")
    spent.sort()
    p95 = spent[math.ceil(0.95 * len(spent)) - 1]  # nearest rank
    return {"p50": round(statistics.median(spent), 2), "p95": round(p95, 2)}


def measure(node: Node, samples: int) -> dict:
    """The explorer's render times and first-load weight on this node's chain."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    latest = node.store.last_height()
    with TestClient(create_app(node)) as client:
        client.get("/")  # templates compiled once, as a running node has them
        home = client.get("/")
        weight = len(home.content) + sum(len(client.get(f"/explorer/static/{name}").content)
                                         for name in ("explorer.css", "explorer.js"))
        return {"list_newest_ms": timed(client, "/", samples),
                "list_middle_ms": timed(client, f"/?before={latest // 2}", samples),
                "list_oldest_ms": timed(client, f"/?before={PAGE_BLOCKS + 1}", samples),
                "block_page_ms": timed(client, f"/explorer/block/{latest // 2}", samples),
                "first_load_bytes": weight}


def run(blocks: int, home: Path | None, samples: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        node, build_s = build_chain(home or Path(scratch) / "home", blocks)
        try:
            result = measure(node, samples)
            result["blocks"] = node.store.last_height()
        finally:
            node.store.close()
    result["ratio_newest_to_oldest"] = round(result["list_newest_ms"]["p50"] / result["list_oldest_ms"]["p50"], 3)
    result.update({"samples": samples, "build_s": round(build_s, 3), "budget_ms": BUDGET_MS,
                   "machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
                   "date": time.strftime("%Y-%m-%d")})
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench portal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=DEFAULT_BLOCKS, help="chain length to measure on")
    parser.add_argument("--home", type=Path, help="keep (and reuse) the chain in this node home")
    parser.add_argument("--samples", type=int, default=50, help="requests per measured page")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.blocks < PAGE_BLOCKS + 1:
        parser.error(f"--blocks: expected at least {PAGE_BLOCKS + 1}")
    if args.samples < 1:
        parser.error("--samples: expected at least 1")
    result = run(args.blocks, args.home, args.samples)
    if not args.json:
        print(f"{result['blocks']:,} blocks: block list newest p50 {result['list_newest_ms']['p50']} ms, "
              f"oldest p50 {result['list_oldest_ms']['p50']} ms (ratio {result['ratio_newest_to_oldest']}), "
              f"first load {result['first_load_bytes']:,} bytes", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
