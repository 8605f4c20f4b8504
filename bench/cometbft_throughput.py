"""CometBFT throughput benchmark: same as `cityledger bench --engine cometbft`; see cityledger/tools/bench_cometbft.py."""

import sys

from cityledger.tools.bench_cometbft import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
