"""Crash-test load: runs a solo node in-process, commits transfer blocks forever, and after each
commit appends the committed tx ids to a report file (fsynced) — what the node 'reported committed'."""

import os
import sys
from pathlib import Path

from cityledger.core.accounts import get_nonce
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer
from cityledger.node.home import load_config, load_key
from cityledger.node.runner import Node


def main(home: Path, report: Path) -> None:
    node = Node(load_config(home))
    keys = [load_key(path) for path in sorted((home / "keys").glob("*.json"))]
    sink = bytes(20)
    with open(report, "a") as out:
        while True:
            txs = []
            for key in keys:
                nonce = get_nonce(node.store, key.address())
                txs += [build_tx(node.config.chain_id, [key], nonce + i, [Transfer(sink, 1)]) for i in range(40)]
            results = node.engine.submit_batch(txs)
            assert all(r.result.ok for r in results), results[0].result.log
            height = node.engine.produce_block()
            out.write(f"{height} " + " ".join(r.tx_id.hex() for r in results) + "\n")
            out.flush()
            os.fsync(out.fileno())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
