"""Ledger throughput benchmark: same as `cityledger bench`; see cityledger/tools/bench.py."""

import sys

from cityledger.tools.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
