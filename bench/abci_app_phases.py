"""The ledger app's CPU per tx as CometBFT drives it, offline: one process, no network, no CometBFT.

The CometBFT bench's load (signed transfers from --senders funded senders to one sink) goes through
the ABCI `RequestHandler` as serialised requests, in the order a validator sees them: every tx's
CheckTx, then per block of --block-txs txs a ProcessProposal, FinalizeBlock and Commit, followed by
the rechecks of the txs still waiting. Each phase's process CPU time is summed over --repeats fresh
apps; the median repeat is reported. The baseline, measured in the same run, is one Ed25519 (ZIP-215)
verification per tx, the floor every validator must pay for a signed tx: `app_to_verify` is the
app's whole cost per tx in multiples of it, a figure that moves far less with the VM's speed than
microseconds do.

Run: PYTHONPATH=src python bench/abci_app_phases.py [--txs 4000] [--block-txs 400] [--senders 400]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

from cityledger.app.application import CityApp
from cityledger.core.keys import PrivateKey, verify_ed25519_zip215
from cityledger.core.storage import Store
from cityledger.engines.cometbft.abci_server import RequestHandler
from cityledger.engines.cometbft.proto import abci
from cityledger.node.modules import default_modules
from cityledger.node.runner import tune_gc
from cityledger.tools.bench_cometbft import make_ledger_load

CHAIN_ID = "bench-abci"
PHASES = ("check_new", "block", "recheck")


def _frame(**fields) -> bytes:
    return abci.Request(**fields).SerializeToString()


def _check(tx: bytes, recheck: bool) -> bytes:
    return _frame(check_tx=abci.RequestCheckTx(tx=tx, type=abci.RECHECK if recheck else abci.NEW))


def _block(height: int, txs: list[bytes]) -> list[bytes]:
    proposal = abci.RequestProcessProposal(txs=txs, height=height)
    finalize = abci.RequestFinalizeBlock(txs=txs, height=height)
    proposal.time.seconds = finalize.time.seconds = 1_000 + height
    return [_frame(process_proposal=proposal), _frame(finalize_block=finalize), _frame(commit=abci.RequestCommit())]


def _run(handler: RequestHandler, frames: list[bytes]) -> None:
    for start in range(0, len(frames), 64):  # the server answers CheckTx in slices of 64
        _, failed = handler.handle_batch(frames[start:start + 64])
        if failed:
            raise RuntimeError(f"the app failed: {handler.fatal_error!r}")


def run_once(genesis: dict, funding: list[bytes], txs: list[bytes], block_txs: int) -> dict[str, float]:
    """CPU seconds per phase for one fresh app."""
    with tempfile.TemporaryDirectory(prefix="abci-phases-") as folder:
        store = Store(Path(folder) / "ledger.sqlite", sync_every_block=False)
        handler = RequestHandler(CityApp(store, default_modules(), CHAIN_ID))
        init = abci.RequestInitChain(chain_id=CHAIN_ID, initial_height=1,
                                     app_state_bytes=json.dumps(genesis, sort_keys=True).encode())
        init.time.seconds = 1
        _run(handler, [_frame(init_chain=init)])
        _run(handler, [_check(tx, False) for tx in funding] + _block(1, funding))
        stream = [("check_new", [_check(tx, False) for tx in txs])]
        for index, start in enumerate(range(0, len(txs), block_txs)):
            stream.append(("block", _block(2 + index, txs[start:start + block_txs])))
            stream.append(("recheck", [_check(tx, True) for tx in txs[start + block_txs:start + 2 * block_txs]]))
        tune_gc()
        spent = dict.fromkeys(PHASES, 0.0)
        for phase, frames in stream:
            started = time.process_time()
            _run(handler, frames)
            spent[phase] += time.process_time() - started
        store.close()
        return spent


def measure_verify(txs: int) -> float:
    """CPU seconds of `txs` ZIP-215 verifications (the baseline)."""
    key = PrivateKey.generate()
    message = os.urandom(150)
    signature = key.sign(message)
    started = time.process_time()
    for _ in range(txs):
        verify_ed25519_zip215(key.public_key.key, message, signature)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=4_000)
    parser.add_argument("--block-txs", type=int, default=400)
    parser.add_argument("--senders", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if min(args.txs, args.block_txs, args.senders, args.repeats) < 1:
        parser.error("--txs, --block-txs, --senders and --repeats: expected integers >= 1")
    funder = PrivateKey.generate()
    funder_address = "city" + funder.address().hex()
    genesis = {"governance": {"members": [{"name": "member0", "address": funder_address}], "threshold": 1},
               "bank": {"allocations": [{"address": funder_address, "amount": 10**15}]}}
    funding, per_sender = make_ledger_load(CHAIN_ID, funder, args.txs, args.senders)
    txs = [tx for level in range(max(map(len, per_sender))) for stream in per_sender if level < len(stream)
           for tx in [stream[level]]]
    runs, verify = [], []
    with Progress(transient=True) as progress:
        task = progress.add_task("app phases", total=args.repeats)
        for _ in range(args.repeats):
            verify.append(measure_verify(len(txs)))
            runs.append(run_once(genesis, funding, txs, args.block_txs))
            progress.advance(task)
    totals = [sum(run.values()) for run in runs]
    middle = runs[totals.index(statistics.median_low(totals))]
    per_tx = {f"{phase}_us": round(middle[phase] / len(txs) * 1e6, 1) for phase in PHASES}
    app_us = round(sum(middle.values()) / len(txs) * 1e6, 1)
    verify_us = round(statistics.median(verify) / len(txs) * 1e6, 1)
    result = {"txs": len(txs), "block_txs": args.block_txs, "senders": args.senders, **per_tx, "app_us": app_us,
              "verify_baseline_us": verify_us, "app_to_verify": round(app_us / verify_us, 2),
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version(),
              "date": datetime.date.today().isoformat()}
    for phase in PHASES:
        print(f"{phase:10s} {per_tx[phase + '_us']:7.1f} µs per tx")
    print(f"{'app':10s} {app_us:7.1f} µs per tx = {result['app_to_verify']} × one Ed25519 verification ({verify_us} µs)")
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
