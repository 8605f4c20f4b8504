"""Benchmark payment-channel vouchers: vouchers verified/s against bare signature checks/s of the
same curve, in the same run, on one core (the issue's bound: vouchers >= 0.8x signatures).

A voucher check is what the chain and a payee do: build the signed bytes (compute_voucher_bytes)
and verify one signature (verify_voucher). The bound is core.keys.verify_signature over bytes built
once, so the ratio is the cost of the voucher format itself.

Run: PYTHONPATH=src python bench/payments_vouchers.py [--curve p256|ed25519] [--samples 20000]
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from cityledger.core.keys import SCHEME_ED25519, SCHEME_P256, PrivateKey, verify_signature
from cityledger.modules.payments import compute_voucher_bytes, sign_voucher, verify_voucher

CHAIN_ID = "bench-city-1"
VOUCHER_POOL = 256  # distinct vouchers cycled through, as a payee sees a stream of them
ROUNDS = 20  # the two loops alternate in this many short rounds; each rate is its best round


def pin_one_core() -> None:
    """Run on one core, as the bound is stated; silently skip where affinity is not available."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def measure(samples: int, scheme: int) -> dict:
    """Best-round rates of voucher checks and of bare signature checks, interleaved."""
    key = PrivateKey(scheme, bytes([0x42]) * 32)
    public = key.public_key
    vouchers = [(7, 1_000 * n, n, sign_voucher(key, CHAIN_ID, 7, 1_000 * n, n)) for n in range(1, VOUCHER_POOL + 1)]
    signed = [(compute_voucher_bytes(CHAIN_ID, c, a, n), s) for c, a, n, s in vouchers]
    chunk = max(1, samples // ROUNDS)
    voucher_rates, signature_rates = [], []
    # Short alternating rounds, best of each: on a shared machine a slow spell then hits both loops
    # alike instead of one, which is what a ratio needs.
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for i in range(chunk):
            channel, amount, nonce, signature = vouchers[i % VOUCHER_POOL]
            if not verify_voucher(public, CHAIN_ID, channel, amount, nonce, signature):
                raise AssertionError("a valid voucher did not verify")
        voucher_rates.append(chunk / (time.perf_counter() - start))
        start = time.perf_counter()
        for i in range(chunk):
            message, signature = signed[i % VOUCHER_POOL]
            if not verify_signature(public, message, signature):
                raise AssertionError("a valid signature did not verify")
        signature_rates.append(chunk / (time.perf_counter() - start))
    vouchers_per_s, signatures_per_s = max(voucher_rates), max(signature_rates)
    return {"curve": "p256" if scheme == SCHEME_P256 else "ed25519", "samples": chunk * ROUNDS,
            "vouchers_verified_per_s": round(vouchers_per_s), "signature_verify_per_s": round(signatures_per_s),
            "ratio": round(vouchers_per_s / signatures_per_s, 3)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curve", choices=["p256", "ed25519"], default="p256")
    parser.add_argument("--samples", type=int, default=20_000)
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error("--samples: expected at least 1")
    pin_one_core()
    result = measure(args.samples, SCHEME_P256 if args.curve == "p256" else SCHEME_ED25519)
    result["python"] = platform.python_version()
    print(f"{result['curve']}: {result['vouchers_verified_per_s']:,} vouchers/s, "
          f"{result['signature_verify_per_s']:,} signatures/s, ratio {result['ratio']}", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
