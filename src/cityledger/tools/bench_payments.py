"""`cityledger bench payments`: payment-channel vouchers verified per second against bare signature
checks of the same curve, in the same run, on one core (the bound: vouchers >= 0.8x signatures).

A voucher check is what the chain and a payee do: build the signed bytes (compute_voucher_bytes)
and verify one signature (verify_voucher). The bound is core.keys.verify_signature over bytes built
once, so the ratio is the cost of the voucher format itself. Both loops run in short alternating
rounds in one process pinned to one core; each rate is its best round, so a slow spell on a shared
machine hits both loops alike instead of one.

Run: cityledger bench payments [--curve both|ed25519|p256] [--samples 20000] [--json]
(or python bench/payments_vouchers.py). The last line of output is one JSON object:
  vouchers_verified_per_s, signature_verify_per_s, ratio    each {curve: figure}
  samples (per loop and curve), cores_used (1), machine, python, date
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from ..core.keys import SCHEME_ED25519, SCHEME_P256, PrivateKey, verify_signature
from ..modules.payments import compute_voucher_bytes, sign_voucher, verify_voucher

CHAIN_ID = "bench-city-1"
CHANNEL_ID = 7
VOUCHER_POOL = 256  # distinct vouchers cycled through, as a payee sees a stream of them
ROUNDS = 20  # the two loops alternate in this many short rounds; each rate is its best round
CURVES = {"ed25519": SCHEME_ED25519, "p256": SCHEME_P256}


@contextmanager
def one_core() -> Iterator[None]:
    """Run on one core, as the bound is stated, and give the process its cores back afterwards
    (it may be a test session's); skipped where affinity is not available."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def _rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)


def measure(samples: int, scheme: int) -> tuple[float, float, int]:
    """(vouchers/s, signatures/s, samples per loop): best-round rates of the two loops, interleaved."""
    key = PrivateKey(scheme, bytes([0x42]) * 32)
    public = key.public_key
    vouchers = [(CHANNEL_ID, 1_000 * n, n, sign_voucher(key, CHAIN_ID, CHANNEL_ID, 1_000 * n, n))
                for n in range(1, VOUCHER_POOL + 1)]
    signed = [(compute_voucher_bytes(CHAIN_ID, c, a, n), s) for c, a, n, s in vouchers]
    chunk = max(1, samples // ROUNDS)
    voucher_rates, signature_rates = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for i in range(chunk):
            channel, amount, nonce, signature = vouchers[i % VOUCHER_POOL]
            if not verify_voucher(public, CHAIN_ID, channel, amount, nonce, signature):
                raise AssertionError("a valid voucher did not verify")
        voucher_rates.append(_rate(chunk, started))
        started = time.perf_counter()
        for i in range(chunk):
            message, signature = signed[i % VOUCHER_POOL]
            if not verify_signature(public, message, signature):
                raise AssertionError("a valid signature did not verify")
        signature_rates.append(_rate(chunk, started))
    return max(voucher_rates), max(signature_rates), chunk * ROUNDS


def run(samples: int, curves: list[str]) -> dict:
    """Every figure of the benchmark, for each curve."""
    result: dict = {"vouchers_verified_per_s": {}, "signature_verify_per_s": {}, "ratio": {}}
    with one_core():
        for curve in curves:
            vouchers, signatures, done = measure(samples, CURVES[curve])
            result["vouchers_verified_per_s"][curve] = round(vouchers)
            result["signature_verify_per_s"][curve] = round(signatures)
            result["ratio"][curve] = round(vouchers / signatures, 3)
    result.update({"samples": done, "cores_used": 1, "machine": f"{platform.machine()} {os.cpu_count()} cores",
                   "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")})
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print a summary (unless --json) and the JSON line."""
    parser = argparse.ArgumentParser(prog="cityledger bench payments", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curve", choices=["both", *CURVES], default="both")
    parser.add_argument("--samples", type=int, default=20_000, help="voucher checks per curve (and as many "
                        "signature checks)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.samples < 1:
        parser.error("--samples: expected at least 1")
    curves = list(CURVES) if args.curve == "both" else [args.curve]
    result = run(args.samples, curves)
    if not args.json:
        for curve in curves:
            print(f"{curve}: {result['vouchers_verified_per_s'][curve]:,} vouchers/s, "
                  f"{result['signature_verify_per_s'][curve]:,} signatures/s, ratio {result['ratio'][curve]}",
                  file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
