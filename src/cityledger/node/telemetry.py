"""What a node runs when its config.toml enables [telemetry]: the project's Mosquitto, the gateway
(anchoring one root per interval through this node) and the vault service (owners' reads, consumers'
reads under consent, erasure, the access log anchored in batches through this node).

    <home>/telemetry/broker/          Mosquitto's config, password and ACL files, persistence (offchain/telemetry/broker.py)
    <home>/telemetry/gateway/         the gateway's state.sqlite (last sequence per device, intervals, roots)
    <home>/telemetry/vaults/          the owners' vaults, one folder each (ciphertext and wrapped keys)
    <home>/telemetry/access-log.sqlite  the vault service's signed, hash-chained access log

The gateway anchors as the organisation DID `gateway_did` (accredited for telemetry-gateway), signed
by the key file `gateway_key`; the vault service signs its log and anchors it as `vault_service_did`
(accredited for vault-service) with `vault_service_key`. Devices are learnt from the ledger
(offchain/telemetry/registry.LedgerDevices): an active device bound to an owner who registered a
vault key.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..core.encoding import Message
from ..modules.consent import AnchorGatewayRoot, get_gateway_root
from ..modules.devices import get_device
from ..modules.devices.messages import STATUS_ACTIVE
from ..modules.identity.did import is_did
from ..offchain.identity.ledger import LedgerError, NodeLedger
from ..offchain.telemetry.broker import Broker
from ..offchain.telemetry.gateway import Gateway
from ..offchain.telemetry.registry import LedgerDevices
from ..offchain.vaults import VaultHost
from ..offchain.vaults.accesslog import AccessLog
from ..offchain.vaults.service import GatewayHeights, VaultService
from .home import NodeConfig, load_key

log = logging.getLogger("cityledger.node.telemetry")

LOG_ANCHOR_EVERY_S = 10.0  # how often the access logs that grew are anchored (one tx) and the broker's devices synced


class SharedVaultHost(VaultHost):
    """A VaultHost the gateway's worker and the API's threads share: one vault object per owner, never two
    stores appending to one folder."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._lock = threading.Lock()

    def vault(self, owner: str):
        """The owner's vault, opened once whichever thread asks first."""
        with self._lock:
            return super().vault(owner)

    def close(self) -> None:
        """Close every open vault."""
        with self._lock:
            super().close()


def _key_path(config: NodeConfig, name: str, value: str) -> Path:
    """A key file inside the home, or ValueError naming the setting."""
    path = Path(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"telemetry.{name}: expected a key file inside the home, got {value!r}")
    if not (config.home / path).is_file():
        raise ValueError(f"telemetry.{name}: no key file {config.home / path}")
    return config.home / path


def _did(name: str, value: str) -> str:
    if not is_did(value):
        raise ValueError(f"telemetry.{name}: expected a did:city DID, got {value!r}")
    return value


class TelemetryService:
    """The broker, the gateway and the vault service of one node."""

    def __init__(self, config: NodeConfig, node) -> None:
        settings = config.telemetry
        self.gateway_did = _did("gateway_did", settings.gateway_did)
        self.gateway_key = load_key(_key_path(config, "gateway_key", settings.gateway_key))
        self.service_did = _did("vault_service_did", settings.vault_service_did)
        self.service_key = load_key(_key_path(config, "vault_service_key", settings.vault_service_key))
        self.node, self.settings, self.folder = node, settings, config.telemetry_path
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ledger = NodeLedger(node)
        self.broker = Broker(self.folder / "broker", settings.host, settings.port)
        self.vault_host = SharedVaultHost(self.folder / "vaults")
        self.access_log = AccessLog(self.folder / "access-log.sqlite", self.service_did, self.service_key)
        self.gateway: Gateway | None = None
        self.vaults = VaultService(self.vault_host, self.access_log, node.store, config.chain_id,
                                   GatewayHeights(self, node.store, self.gateway_did))
        self._stop = threading.Event()
        self._anchorer: threading.Thread | None = None

    @property
    def state(self):
        """The gateway's state (GatewayHeights reads where a record was received), None before start."""
        return None if self.gateway is None else self.gateway.state

    def start(self) -> None:
        """Start Mosquitto, then the gateway subscribed to it, then the access-log anchoring thread."""
        self.broker.start()
        self.gateway = Gateway(self.folder / "gateway", self.vault_host, LedgerDevices(self.node.store),
                               self.anchor_root, self.broker.host, self.broker.port, self.broker.gateway_password(),
                               self.settings.interval_s)
        try:
            self.gateway.start()
        except BaseException:
            self.broker.stop()
            raise
        self._stop.clear()
        self._anchorer = threading.Thread(target=self._anchor_logs, name="vault-log-anchor", daemon=True)
        self._anchorer.start()
        log.info("telemetry: broker on %s:%d, gateway subscribed", self.broker.host, self.broker.port)

    def anchor_root(self, root: bytes, count: int, interval: int) -> None:
        """The gateway's anchor: one AnchorGatewayRoot per interval through this node; a repeat is done."""
        held = get_gateway_root(self.node.store, self.gateway_did, interval)
        if held is not None:
            if held.root != root:
                raise LedgerError("consent", 0, f"interval {interval}: the ledger holds another root")
            return
        self.ledger.send([self.gateway_key], [AnchorGatewayRoot(self.gateway_did, interval, root, count)]) \
            .raise_for_error()

    def send_log_anchors(self, messages: list[Message]) -> None:
        """The vault service's send: one tx of AnchorAccessLog messages, committed before it returns."""
        self.ledger.send([self.service_key], messages).raise_for_error()

    def _anchor_logs(self) -> None:
        while not self._stop.wait(LOG_ANCHOR_EVERY_S):
            self.anchor_logs_now()
            self.sync_devices()

    def sync_devices(self) -> list[str]:
        """Take up devices added to the broker's registry by another process, and take the credentials
        from devices the ledger no longer lists as active (decommissioned): the files are regenerated and
        Mosquitto reloads them (SIGHUP). The DIDs removed."""
        if self.broker.refresh():
            log.info("telemetry: the broker took up devices added by `cityledger telemetry device-add`")
        removed = []
        for did in self.broker.devices():
            device = get_device(self.node.store, did)
            if device is None or device.status != STATUS_ACTIVE:
                self.broker.remove_device(did)
                removed.append(did)
        if removed:
            log.info("telemetry: removed %d decommissioned device(s) from the broker", len(removed))
        return removed

    def anchor_logs_now(self) -> int:
        """Anchor every access log that grew (one tx); the number anchored, 0 on a failure (retried later)."""
        try:
            return self.vaults.anchor_due(self.send_log_anchors)
        except (LedgerError, OSError) as exc:
            log.warning("vault service: anchoring the access logs failed, retrying: %s", exc)
            return 0

    def stop(self) -> None:
        """Stop anchoring, the gateway and the broker; close the vaults and the log."""
        self._stop.set()
        if self._anchorer is not None:
            self._anchorer.join()
        if self.gateway is not None:
            self.gateway.close()
        self.broker.stop()
        self.vault_host.close()
        self.access_log.close()
