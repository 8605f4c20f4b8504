"""The CSMS a node hosts when its config.toml enables [charging]: its own asyncio loop on a thread.

`Node.start` starts it and `Node.stop` stops it; chargers registered with `cityledger charging
charger add` (the home's charging/chargers.json) may connect to ws://host:port/ocpp/<charger id>
(wss:// once [charging] names tls_cert and tls_key: `cityledger charging tls-init` writes them).
Its sessions, channels and idToken secret live in charging/csms.sqlite; vehicles authorise at
ws://host:port/authorize against the node's own state, and once a session ends (or the idle
timeout closes it) its channel's newest voucher is redeemed with a channel_redeem the operator key
signs, one per channel per round (offchain/charging/redeem.py), submitted through the node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from pathlib import Path
from typing import Any

from ..core.keys import PrivateKey
from ..core.tx import build_tx
from ..modules.payments import RedeemVoucher, get_channel
from ..offchain.charging import ChannelTerms, ChargerRegistry, Csms, Tariff, Voucher
from ..offchain.charging.store import CsmsStore
from ..offchain.charging.vehicle_auth import VehicleAuthority
from ..offchain.identity.ledger import NodeLedger
from .charging_tls import open_tls_context
from .home import NodeConfig, load_key

log = logging.getLogger("cityledger.node.charging")

START_TIMEOUT_S = 30  # how long start waits for the CSMS to listen before giving up
STOP_TIMEOUT_S = 10  # how long stop waits for the connections to close
REDEEM_COMMIT_TIMEOUT_S = 60  # how long a redeem round waits for its txs to commit before retrying later


def node_chain_id(ledger: NodeLedger) -> str:
    """The chain id of the node behind a ledger."""
    return ledger.node.app.chain_id


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
        self.tls = open_tls_context(config.home, settings)
        self.scheme = "ws" if self.tls is None else "wss"
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
            self.csms.settle = lambda items: self._redeem(operator_key, items)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Listen for chargers and vehicles; return the bound port."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="charging-csms", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.csms.start(self.host, self.requested_port, self.tls), self._loop)
        try:
            self.port = future.result(START_TIMEOUT_S)
        except BaseException as exc:
            self.stop()
            raise ValueError(f"charging.port: cannot listen on {self.host}:{self.requested_port} ({exc})") from None
        log.info("charging: CSMS listening on %s://%s:%d/ocpp/<charger id>", self.scheme, self.host, self.port)
        return self.port

    def _redeem(self, operator_key: PrivateKey, items: list[tuple[ChannelTerms, Voucher]]) -> list[str | None]:
        """Redeem each channel's voucher (one tx each, all submitted, then awaited); per item None or why not."""
        node, chain_id = self.ledger.node, node_chain_id(self.ledger)
        state = self.ledger.state_at(self.ledger.height())
        nonce = node.engine.pending_nonce(operator_key.address())
        answers: list[str | None] = [None] * len(items)
        sent = []
        for index, (terms, voucher) in enumerate(items):
            channel = get_channel(state, terms.channel_id)
            if channel is not None and channel.nonce >= voucher.nonce:
                continue  # the chain holds it already (redeemed before a restart lost the store's note)
            message = RedeemVoucher(terms.channel_id, voucher.amount, voucher.nonce, voucher.signature)
            submitted = node.engine.submit(build_tx(chain_id, [operator_key], nonce, [message]))
            if not submitted.result.ok:
                result = submitted.result
                answers[index] = f"{result.codespace}/{result.code} {result.log}"
                continue
            nonce += 1
            sent.append((index, submitted.tx_id))
        for index, tx_id in sent:
            found = node.engine.wait_for_tx(tx_id, REDEEM_COMMIT_TIMEOUT_S)
            if found is None:
                answers[index] = f"not committed within {REDEEM_COMMIT_TIMEOUT_S} s"
                continue
            record = node.store.get_block(found[0]).results[found[1]]
            if record.code:
                answers[index] = f"{record.codespace}/{record.code} {record.log}"
        return answers

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
