"""The CSMS a node hosts when its config.toml enables [charging]: its own asyncio loop on a thread.

`Node.start` starts it and `Node.stop` stops it; chargers registered with `cityledger charging
charger add` (the home's charging/chargers.json) may connect to ws://host:port/ocpp/<charger id>.
Its sessions, channels and idToken secret live in charging/csms.sqlite; vehicles authorise at
ws://host:port/authorize against the node's own state, and a session closed by the idle timeout
is settled with a channel_redeem the operator key signs, sent through the node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any

from ..core.keys import PrivateKey
from ..modules.payments import RedeemVoucher
from ..offchain.charging import ChannelTerms, ChargerRegistry, Csms, Tariff, Voucher
from ..offchain.charging.store import CsmsStore
from ..offchain.charging.vehicle_auth import VehicleAuthority
from ..offchain.identity.ledger import NodeLedger
from .home import NodeConfig, load_key

log = logging.getLogger("cityledger.node.charging")

START_TIMEOUT_S = 30  # how long start waits for the CSMS to listen before giving up
STOP_TIMEOUT_S = 10  # how long stop waits for the connections to close


def registry_path(home: Path) -> Path:
    """The home's charger registry file."""
    return Path(home) / "charging" / "chargers.json"


def store_path(home: Path) -> Path:
    """The CSMS's state: sessions, channels, newest vouchers, the idToken secret."""
    return Path(home) / "charging" / "csms.sqlite"


def open_registry(home: Path) -> ChargerRegistry:
    """The home's charger registry (created empty, its folder mode 700, on first use)."""
    path = registry_path(home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return ChargerRegistry(path)


class ChargingService:
    """One CSMS on a daemon thread running its own event loop."""

    def __init__(self, config: NodeConfig, node: Any = None) -> None:
        """The CSMS of a home; with `node`, vehicles authorise against its state and idle sessions settle through it."""
        settings = config.charging
        key_path = config.home / settings.operator_key
        if not key_path.exists():
            raise ValueError(f"charging.operator_key: no key file {key_path}")
        tariff = Tariff(settings.per_kwh_micro, settings.per_minute_micro, settings.per_session_micro)
        self.host = settings.host
        self.requested_port = settings.port
        self.port: int | None = None
        operator_key = load_key(key_path)
        self.store = CsmsStore(store_path(config.home), settings.store_sync)
        authority = None
        if node is not None:
            self.ledger = NodeLedger(node)
            authority = VehicleAuthority(self.ledger, config.chain_id, operator_key.address(), self.store.secret())
        self.csms = Csms(open_registry(config.home), tariff, operator_key, settings.margin_micro, store=self.store,
                         authority=authority, session_timeout_s=settings.session_timeout_s)
        if node is not None:
            self.csms.settle = lambda terms, voucher: self._redeem(operator_key, terms, voucher)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Listen for chargers and vehicles; return the bound port."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="charging-csms", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.csms.start(self.host, self.requested_port), self._loop)
        try:
            self.port = future.result(START_TIMEOUT_S)
        except BaseException as exc:
            self.stop()
            raise ValueError(f"charging.port: cannot listen on {self.host}:{self.requested_port} ({exc})") from None
        log.info("charging: CSMS listening on ws://%s:%d/ocpp/<charger id>", self.host, self.port)
        return self.port

    def _redeem(self, operator_key: PrivateKey, terms: ChannelTerms, voucher: Voucher) -> None:
        """Redeem a channel's newest voucher on chain, signed by the operator key; raise if refused."""
        message = RedeemVoucher(terms.channel_id, voucher.amount, voucher.nonce, voucher.signature)
        self.ledger.send([operator_key], [message]).raise_for_error()

    def stop(self) -> None:
        """Close the listener and every connection, then end the loop's thread."""
        if self._loop is None:
            self.store.close()
            return
        loop, self._loop = self._loop, None
        future = asyncio.run_coroutine_threadsafe(self.csms.stop(), loop)
        try:
            future.result(STOP_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, OSError, RuntimeError) as exc:
            log.warning("charging: CSMS did not stop cleanly: %r", exc)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        if not loop.is_running():
            loop.close()
        self.store.close()
