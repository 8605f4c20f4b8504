"""The app process of a CometBFT testnet node: a Node whose engine only serves the app over ABCI.

    python -m cityledger.node.app_process --db DB --chain-id ID --address tcp://127.0.0.1:PORT
        [--snapshot-interval N] [--api-port PORT --rpc-port PORT] [--home DIR] [--skip-state-check]
        [--verify-workers N]

The app never applies the genesis itself: CometBFT sends InitChain with the genesis file's
app_state on a fresh node. Before it listens, the process checks that the state on disk still
hashes to the app hash it last committed (engines/cometbft/node.verify_committed_state) and exits
2 with an "app hash mismatch" message naming both hashes if it does not. With --api-port it also
serves the REST API, submitting txs to the CometBFT node whose RPC is on --rpc-port.

It runs until SIGTERM or SIGINT (exit 0), or until the node fails (exit 1, the reason logged): the
app raised (CometBFT has been answered with the exception and halts) or CometBFT closed the
consensus connection (it stopped or crashed).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from .home import NodeConfig
from .runner import FATAL_POLL_S, CometSettings, Node

log = logging.getLogger("cityledger.node.app_process")

EXIT_NODE_FAILED = 1
EXIT_STATE_MISMATCH = 2
DEFAULT_SNAPSHOT_INTERVAL = 0  # testnets pass their own (engines/cometbft/testnet.DEFAULT_SNAPSHOT_INTERVAL)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the app's SQLite store")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--address", required=True, help="tcp://127.0.0.1:PORT or unix:///path")
    parser.add_argument("--home", type=Path, default=None,
                        help="the node's folder (hosted issuers under issuers/) [default: the db's folder's parent]")
    parser.add_argument("--retain-heights", type=int, default=1000)
    parser.add_argument("--snapshot-interval", type=int, default=DEFAULT_SNAPSHOT_INTERVAL,
                        help="take a state-sync snapshot every N heights (0: none)")
    parser.add_argument("--api-port", type=int, default=0, help="also serve the REST API on this port (0: no API)")
    parser.add_argument("--api-host", default="127.0.0.1")
    parser.add_argument("--rpc-port", type=int, default=26657, help="the CometBFT RPC port the API submits to")
    parser.add_argument("--skip-state-check", action="store_true",
                        help="do not recompute the app hash from the state at start-up")
    parser.add_argument("--verify-workers", type=int, default=None,
                        help="verifier processes for CheckTx batches and unseen block txs [default: one per core; 0: none]")
    args = parser.parse_args(argv)
    for name in ("snapshot_interval", "retain_heights", "api_port", "rpc_port", "verify_workers"):
        if (getattr(args, name) or 0) < 0:
            parser.error(f"--{name.replace('_', '-')}: expected N >= 0, got {getattr(args, name)}")
    return args


def build_node(args: argparse.Namespace) -> Node:
    """The testnet node's Node: CometBFT engine, not managing CometBFT, on the given store."""
    home = args.home or args.db.parent.parent
    config = NodeConfig(home=home, chain_id=args.chain_id, engine="cometbft", retain_heights=args.retain_heights)
    comet = CometSettings(rpc_port=args.rpc_port, abci_address=args.address, snapshot_interval=args.snapshot_interval,
                          manage_cometbft=False, check_state=not args.skip_state_check,
                          track_txs=bool(args.api_port), verify_workers=args.verify_workers)
    return Node(config, comet, exit_on_failure=bool(args.api_port), db_path=args.db)


def serve_abci(node: Node) -> int:
    """Serve the app over ABCI until a signal (0) or the node fails (1)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: stop.set())
    node.start()
    try:
        while node.failure() is None and not stop.wait(FATAL_POLL_S):
            pass
    finally:
        node.stop()
    return _exit_code(node)


def _exit_code(node: Node) -> int:
    failure = node.failure()
    if failure is None:
        return 0
    log.error("stopping: %s", failure)
    return EXIT_NODE_FAILED


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ..engines.cometbft.node import StateMismatchError

    try:
        node = build_node(args)
    except StateMismatchError as exc:
        log.error("refusing to start: %s", exc)
        return EXIT_STATE_MISMATCH
    if not args.api_port:
        return serve_abci(node)
    from ..api import serve

    serve(node, args.api_host, args.api_port, log_level="warning")  # stops the node before it returns
    return _exit_code(node)


if __name__ == "__main__":
    sys.exit(main())
