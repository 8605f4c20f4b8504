"""The in-process ledger bench (`tools/bench.py`'s bench_inprocess) of a baseline commit against the
working tree, alternating in one session, with CPU per tx so the comparison holds on a loaded machine.

The baseline is extracted with `git archive REV` into a temporary folder and run from there with the
same virtual environment. Each run is a fresh process that times the in-process run as
`cityledger bench` does, and measures the CPU of its own process from the end of signing to the last
commit (the funding block included) and of its verifier workers (reaped when the node stops), per
tx. Prints one JSON line per run, then a JSON summary (medians per side, new / base).

Run: PYTHONPATH=src python bench/ledger_ab.py [--base 72f2197] [--rounds 3] [--txs 40000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside each child: hooks around make_load and _commit_latencies mark the timed part, so the
# baseline's bench (which reports no CPU) is measured exactly like the working tree's.
_DRIVER = """
import json, os, resource, sys
from cityledger.tools import bench
def cpu(who=resource.RUSAGE_SELF):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
marks, make_load, latencies = {}, bench.make_load, bench._commit_latencies
def timed_load(*args):
    out = make_load(*args)
    marks["start"], marks["load"] = cpu(), os.getloadavg()[0]
    return out
def timed_latencies(*args):
    marks["end"] = cpu()
    return latencies(*args)
bench.make_load, bench._commit_latencies = timed_load, timed_latencies
children = cpu(resource.RUSAGE_CHILDREN)
n_txs, senders, block = (int(a) for a in sys.argv[1:4])
result = bench.bench_inprocess(n_txs, senders, block)
print(json.dumps({"tx_per_s": result["tx_per_s_inprocess"], "blocks": result["blocks"],
                  "app_cpu_us_per_tx": round((marks["end"] - marks["start"]) / n_txs * 1e6, 1),
                  "workers_cpu_us_per_tx": round((cpu(resource.RUSAGE_CHILDREN) - children) / n_txs * 1e6, 1),
                  "load_avg_1m": round(marks["load"], 2)}))
"""


def _run(label: str, src: Path, args: argparse.Namespace, round_: int) -> dict:
    """One bench run of the code under `src` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(src))
    command = [sys.executable, "-c", _DRIVER, str(args.txs), str(args.senders), str(args.block_txs)]
    out = subprocess.run(command, env=env, cwd=src.parent, capture_output=True, text=True, check=True).stdout
    row = {"code": label, "round": round_, **json.loads(out.strip().splitlines()[-1])}
    print(json.dumps(row), flush=True)
    return row


def _summary(rows: list[dict]) -> dict:
    """Medians per side and the new / base ratios."""
    out = {}
    for side in ("base", "new"):
        mine = [r for r in rows if r["code"] == side]
        out[side] = {key: statistics.median(r[key] for r in mine)
                     for key in ("tx_per_s", "app_cpu_us_per_tx", "workers_cpu_us_per_tx", "load_avg_1m")}
    out["tx_per_s_new_over_base"] = round(out["new"]["tx_per_s"] / out["base"]["tx_per_s"], 3)
    out["app_cpu_new_over_base"] = round(out["new"]["app_cpu_us_per_tx"] / out["base"]["app_cpu_us_per_tx"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="72f2197", help="the baseline commit (before the admission speed-up)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of base then new")
    parser.add_argument("--txs", type=int, default=40_000)
    parser.add_argument("--senders", type=int, default=2_000)
    parser.add_argument("--block-txs", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        sides = (("base", Path(tmp) / "src"), ("new", ROOT / "src"))
        rows = [_run(label, src, args, round_) for round_ in range(1, args.rounds + 1) for label, src in sides]
    print(json.dumps(_summary(rows), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
