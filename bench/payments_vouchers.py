"""Benchmark payment-channel vouchers against bare signature checks: cityledger.tools.bench_payments.

Run: PYTHONPATH=src python bench/payments_vouchers.py [--curve both|ed25519|p256] [--samples 20000] [--json]
(the same as `cityledger bench payments`); the last line of output is one JSON object.
"""

import sys

from cityledger.tools.bench_payments import main

if __name__ == "__main__":
    sys.exit(main())
