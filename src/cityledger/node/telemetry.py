"""What a node runs when its config.toml enables [telemetry]: the project's Mosquitto, the gateway
(anchoring one root per interval through this node) and the vault service (owners' reads, consumers'
reads under consent, erasure, the access log anchored in batches through this node).

    <home>/telemetry/broker/          Mosquitto's config, password and ACL files, persistence (offchain/telemetry/broker.py)
    <home>/telemetry/gateway/         the gateway's state.sqlite (last sequence per device, intervals, roots)
    <home>/telemetry/gateway-K-of-N/  with `gateways = N` > 1: shard K's own state.sqlite and journal
    <home>/telemetry/fleet.sqlite     with `gateways = N` > 1: the shards' roots handed over, the fleet roots
    <home>/telemetry/vaults/          the owners' vaults, one folder each (ciphertext and wrapped keys)
    <home>/telemetry/access-log.sqlite  the vault service's signed, hash-chained access log

The gateway anchors as the organisation DID `gateway_did` (accredited for telemetry-gateway), signed
by the key file `gateway_key`; the vault service signs its log and anchors it as `vault_service_did`
(accredited for vault-service) with `vault_service_key`. Devices are learnt from the ledger
(offchain/telemetry/registry.LedgerDevices): an active device bound to an owner who registered a
vault key.

With `[telemetry] gateways = N` > 1 the gateway runs as N child processes, gateway K taking the devices
of the topic buckets b with b % N == K (offchain/telemetry/shards.py), each with its own folder, MQTT
session, journal, state and share of the verify workers; they hand their interval roots to this
process (offchain/telemetry/fleet.py), which anchors one root over them per interval, under the same
gateway DID: one transaction per interval whatever N is. A shard that dies is started again; one
that is late or down holds an interval back SHARD_WAIT_S at most, its roots going into a later one.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from ..core.encoding import Message
from ..modules.consent import AnchorGatewayRoot, get_gateway_last_interval, get_gateway_root
from ..modules.devices import get_device
from ..modules.devices.messages import STATUS_ACTIVE
from ..modules.identity.did import is_did
from ..offchain.identity.ledger import LedgerError, NodeLedger
from ..offchain.telemetry.broker import Broker
from ..offchain.telemetry.fleet import FleetAnchor, FleetRoot
from ..offchain.telemetry.gateway import Gateway, GatewayError
from ..offchain.telemetry.registry import LedgerDevices
from ..offchain.telemetry.reshard import carry_last_seq, layout_folder
from ..offchain.telemetry.shards import FleetError, FleetRecords, ShardProcess, ShardSpec
from ..offchain.vaults import VaultHost
from ..offchain.vaults.accesslog import AccessLog
from ..offchain.vaults.service import GatewayHeights, VaultService
from .home import NodeConfig, load_key

log = logging.getLogger("cityledger.node.telemetry")

LOG_ANCHOR_EVERY_S = 10.0  # how often the access logs that grew are anchored (one tx) and the broker's devices synced
FLEET_TICK_S = 0.5  # how often the fleet's anchoring point looks for an interval that is due (gateways > 1)


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
        self.fleet: FleetAnchor | None = None  # gateways > 1: the shards' roots, one fleet root per interval
        self.shards: list[ShardProcess] = []
        self.records: FleetRecords | None = None
        self.vaults = VaultService(self.vault_host, self.access_log, node.store, config.chain_id,
                                   GatewayHeights(self, node.store, self.gateway_did))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def state(self):
        """Where records were received (GatewayHeights reads it): the gateway's state, or with shards
        the fleet's records; None before start."""
        return self.records if self.gateway is None else self.gateway.state

    def start(self) -> None:
        """Start Mosquitto, then the gateway (or its shards) subscribed to it, then the anchoring threads."""
        self._carry_last_seq()
        self.broker.start()
        try:
            if self.settings.gateways == 1:
                self.gateway = Gateway(layout_folder(self.folder, 0, 1), self.vault_host, LedgerDevices(self.node.store),
                                       self.anchor_root, self.broker.host, self.broker.port,
                                       self.broker.gateway_password(), self.settings.interval_s)
                self.gateway.start()
            else:
                self._start_shards()
        except BaseException:
            self._stop_shards()
            self.broker.stop()
            raise
        self._stop.clear()
        self._threads = [threading.Thread(target=self._anchor_logs, name="vault-log-anchor", daemon=True)]
        if self.fleet is not None:
            self._threads.append(threading.Thread(target=self._anchor_fleet, name="fleet-anchor", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("telemetry: broker on %s:%d, %d gateway process(es) subscribed", self.broker.host, self.broker.port,
                 self.settings.gateways)

    def shard_folder(self, shard: int) -> Path:
        """Gateway shard K of N's own folder (state, journal)."""
        return layout_folder(self.folder, shard, self.settings.gateways)

    def _carry_last_seq(self) -> None:
        """Devices' last sequence numbers from the folders of another `gateways` setting into this
        one's gateways, so a changed setting never takes a replayed message as new (reshard.py)."""
        carried = carry_last_seq(self.folder, self.settings.gateways)
        if carried.devices:
            log.info("telemetry: %d device(s)' last sequence numbers carried over from %s", carried.devices,
                     ", ".join(carried.folders))
        for name in carried.unfinished:
            log.warning("telemetry: %s holds records not yet filed or anchored; they are filed and anchored "
                        "only by starting with the gateways setting it was made with (docs/SCALING.md)", name)

    def _start_shards(self) -> None:
        """The fleet's anchoring point and the N gateway processes, each waited for until subscribed."""
        count = self.settings.gateways
        self.fleet = FleetAnchor(self.folder / "fleet.sqlite", count, self.settings.interval_s, self.anchor_root,
                                 lambda: get_gateway_last_interval(self.node.store, self.gateway_did))
        self.records = FleetRecords(self.fleet, [self.shard_folder(k) for k in range(count)],
                                    layout_folder(self.folder, 0, 1))
        workers = max(1, (os.cpu_count() or 1) // count)
        ledger = str(getattr(self.node, "db_path", self.node.config.db_path))
        self.shards = [ShardProcess(ShardSpec(k, count, str(self.shard_folder(k)), str(self.folder / "vaults"),
                                              self.broker.host, self.broker.port, self.broker.gateway_password(),
                                              self.settings.interval_s, workers, ledger), self.fleet)
                       for k in range(count)]
        for shard in self.shards:
            try:
                shard.start()
            except FleetError as exc:
                raise GatewayError(str(exc)) from None

    def _anchor_fleet(self) -> None:
        while not self._stop.wait(FLEET_TICK_S):
            self.anchor_fleet_now()

    def anchor_fleet_now(self) -> list[FleetRoot]:
        """Anchor every fleet interval that is due (gateways > 1); the roots anchored."""
        return [] if self.fleet is None else self.fleet.tick()

    def inclusion_proof(self, record_id: bytes):
        """(interval anchored, proof against the root the ledger holds for it under gateway_did) of a
        received record: an InclusionProof with one gateway, a FleetProof with shards; None if unknown,
        not anchored yet, or pruned."""
        if self.gateway is not None:
            return self.gateway.inclusion_proof(record_id)
        return None if self.records is None else self.records.inclusion_proof(record_id)

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

    def _stop_shards(self) -> None:
        """Stop the shard processes (each files what it holds), then close the fleet's files."""
        for shard in self.shards:
            shard.stop()
        if self.records is not None:
            self.records.close()
        if self.fleet is not None:
            self.fleet.close()

    def stop(self) -> None:
        """Stop anchoring, the gateway (or its shards) and the broker; close the vaults and the log."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if self.gateway is not None:
            self.gateway.close()
        self._stop_shards()
        self.broker.stop()
        self.vault_host.close()
        self.access_log.close()
