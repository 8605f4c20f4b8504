"""The app process of a CometBFT node: a CityApp on its own store, served over ABCI.

    python -m cityledger.engines.cometbft.serve --db DB --chain-id ID --address tcp://127.0.0.1:PORT
        [--snapshot-interval N] [--api-port PORT --rpc-port PORT]

The app never applies the genesis itself: CometBFT sends InitChain with the genesis file's
app_state on a fresh node. Before it listens, the process checks that the state on disk still
hashes to the app hash it last committed (see node.verify_committed_state) and exits 2 with an
"app hash mismatch" message naming both hashes if it does not. With --api-port it also serves the
REST API, submitting txs to the CometBFT node whose RPC is on --rpc-port.

It runs until SIGTERM or SIGINT (exit 0) or until the app fails (exit 1, after CometBFT has been
answered with the exception and has halted).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import uvloop

from cityledger.engines.cometbft.abci_server import AbciServer

log = logging.getLogger("cityledger.cometbft.serve")

EXIT_APP_FAILED = 1
EXIT_STATE_MISMATCH = 2
DEFAULT_SNAPSHOT_INTERVAL = 0  # testnets pass their own (testnet.DEFAULT_SNAPSHOT_INTERVAL)
FATAL_POLL_S = 0.2


def open_city_app(db_path: Path, chain_id: str, retain_heights: int, snapshot_interval: int = 0):
    """A CityApp with the default modules on the SQLite store at db_path (state-sync snapshots every N)."""
    from cityledger.app.application import CityApp
    from cityledger.core.storage import Store
    from cityledger.node.modules import default_modules

    db_path.parent.mkdir(parents=True, exist_ok=True)
    # CometBFT replays from its own block store any block the app lost in a power cut.
    store = Store(db_path, retain_heights=retain_heights, sync_every_block=False)
    return CityApp(store, default_modules(), chain_id, snapshot_interval=snapshot_interval), store


async def run(app, address: str) -> int:
    """Serve app until a signal (0) or an app failure (1)."""
    server = AbciServer(app, address)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.ensure_future(server.serve_forever())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    await server.close()
    if serving.done() and serving.exception() is not None:
        log.error("stopping: %s", serving.exception())
        return EXIT_APP_FAILED
    serving.cancel()
    return 0


def run_with_api(app, store, chain_id: str, address: str, rpc_port: int, api_host: str, api_port: int) -> int:
    """Serve app over ABCI and the REST API over HTTP until a signal (0) or an app failure (1)."""
    from cityledger.api import serve as serve_api
    from cityledger.engines.cometbft.node import CometEngine, CometNode
    from cityledger.engines.cometbft.setup import NodePorts

    engine = CometEngine(app, Path("."), NodePorts(rpc=rpc_port, p2p=0, abci=0), manage_cometbft=False,
                         abci_address=address)
    node = CometNode(chain_id, store, app, engine)
    failed = threading.Event()

    def watch() -> None:
        # uvicorn owns the main thread; a halted app stops it the way a signal would.
        while engine.fatal_error is None:
            if failed.wait(FATAL_POLL_S):
                return
        log.error("stopping: the application failed: %r", engine.fatal_error)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="fatal-watch", daemon=True)
    watcher.start()
    try:
        serve_api(node, api_host, api_port, log_level="warning")
    finally:
        failed.set()
    return EXIT_APP_FAILED if engine.fatal_error is not None else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the app's SQLite store")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--address", required=True, help="tcp://127.0.0.1:PORT or unix:///path")
    parser.add_argument("--retain-heights", type=int, default=1000)
    parser.add_argument("--snapshot-interval", type=int, default=DEFAULT_SNAPSHOT_INTERVAL,
                        help="take a state-sync snapshot every N heights (0: none)")
    parser.add_argument("--api-port", type=int, default=0, help="also serve the REST API on this port (0: no API)")
    parser.add_argument("--api-host", default="127.0.0.1")
    parser.add_argument("--rpc-port", type=int, default=26657, help="the CometBFT RPC port the API submits to")
    parser.add_argument("--skip-state-check", action="store_true",
                        help="do not recompute the app hash from the state at start-up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.snapshot_interval < 0:
        parser.error(f"--snapshot-interval: expected N >= 0, got {args.snapshot_interval}")
    from cityledger.engines.cometbft.node import StateMismatchError, verify_committed_state
    from cityledger.node.runner import tune_gc

    app, store = open_city_app(args.db, args.chain_id, args.retain_heights, args.snapshot_interval)
    try:
        if not args.skip_state_check:
            try:
                verify_committed_state(store)
            except StateMismatchError as exc:
                log.error("refusing to start: %s", exc)
                return EXIT_STATE_MISMATCH
        tune_gc()  # as a solo node does: the default thresholds rescan the app's caches all the time
        if args.api_port:
            return run_with_api(app, store, args.chain_id, args.address, args.rpc_port, args.api_host, args.api_port)
        # uvloop (libuv) runs the ABCI sockets' callbacks in C: about 4 % less app CPU per tx than
        # asyncio's own loop, measured with 4 validators (docs/BENCHMARKS.md).
        return uvloop.run(run(app, args.address))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
