"""Benchmark AnonCreds on the ledger (issue, present, verify, raw verify): cityledger.tools.bench_identity.

Run: PYTHONPATH=src python bench/identity_bench.py [--iterations 15] [--json]
(the same as `cityledger bench identity`); the last line of output is one JSON object.
"""

import sys

from cityledger.tools.bench_identity import main

if __name__ == "__main__":
    sys.exit(main())
