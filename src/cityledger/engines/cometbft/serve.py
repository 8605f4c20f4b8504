"""The app process of a CometBFT node: a CityApp on its own store, served over ABCI.

    python -m cityledger.engines.cometbft.serve --db DB --chain-id ID --address tcp://127.0.0.1:PORT

It runs until SIGTERM or SIGINT (exit 0) or until the app fails (exit 1, after CometBFT has been
answered with the exception and has halted).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from cityledger.engines.cometbft.abci_server import AbciServer

log = logging.getLogger("cityledger.cometbft.serve")


def open_city_app(db_path: Path, chain_id: str, retain_heights: int):
    """A CityApp with the default modules on the SQLite store at db_path."""
    from cityledger.app.application import CityApp
    from cityledger.app.modules import default_modules
    from cityledger.core.storage import Store

    db_path.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db_path, retain_heights=retain_heights)
    return CityApp(store, default_modules(), chain_id), store


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
        return 1
    serving.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the app's SQLite store")
    parser.add_argument("--chain-id", required=True)
    parser.add_argument("--address", required=True, help="tcp://127.0.0.1:PORT or unix:///path")
    parser.add_argument("--retain-heights", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app, store = open_city_app(args.db, args.chain_id, args.retain_heights)
    try:
        return asyncio.run(run(app, args.address))
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
