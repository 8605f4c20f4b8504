"""The composition root: a node is assembled here, and only here, from its home's config.

`Node(config)` opens the store, builds the app with the default modules, puts the engine that
config.engine names around it (solo, or CometBFT with `CometSettings`) and opens the issuer offices
and the passport service hosted in the home, the CSMS when [charging] is enabled, and the broker,
gateway and vault service when [telemetry] is (node/telemetry.py). `cityledger up` (either engine), the app process of a testnet node
(node/app_process.py), the benches and the tests all build their nodes with it; the REST API
(api.serve) and the hosted services only see the result through api/protocols.NodeLike.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..app.abc import Engine, InitChainRequest
from ..app.application import CityApp
from ..core.storage import Store
from ..engines.solo.engine import SoloEngine
from .home import NodeConfig, load_genesis, load_key
from .issuers import IssuerConfigError, open_hosted_issuers
from .modules import default_modules
from .passports import PassportAnchoring, open_passport_store

if TYPE_CHECKING:  # the CometBFT engine (protobuf stubs, uvloop) is imported only by nodes that run it
    from ..engines.cometbft.setup import ConsensusTimeouts

log = logging.getLogger("cityledger.node")

GC_GEN0_THRESHOLD = 50_000
FATAL_POLL_S = 0.2  # how often a node that exits on failure looks at its engine
DEFAULT_SNAPSHOT_INTERVAL = 100  # heights between state-sync snapshots of `up --engine cometbft`


def node_errors(engine: str) -> tuple[type[BaseException], ...]:
    """What assembling or starting a node of `engine` raises for a bad home, config or chain data.

    The CLI answers these with their message and a non-zero exit, never a traceback.
    """
    from ..offchain.telemetry.broker import BrokerError
    from ..offchain.telemetry.gateway import GatewayError

    errors: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, IssuerConfigError, BrokerError,
                                               GatewayError)
    if engine == "cometbft":
        from ..engines.cometbft.node import CometEngineError, StateMismatchError
        from ..engines.cometbft.setup import CometSetupError

        errors += (StateMismatchError, CometEngineError, CometSetupError)
    return errors


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running node.

    Every tx allocates a few short-lived objects and the node keeps large caches; with Python's
    default thresholds the collector rescans the caches thousands of times a second (about 7% of
    the instructions per tx, measured with callgrind). Freezing what start-up allocated and
    collecting the youngest generation less often keeps cycles collected at a fraction of that.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


@dataclass
class CometSettings:
    """How a CometBFT node runs, beyond its home's config.toml."""

    rpc_port: int = 26657
    p2p_port: int = 26656
    abci_port: int = 26658
    abci_address: str | None = None  # tcp://host:port or unix:///path; overrides abci_port
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL
    # True: this process prepares CometBFT's home (home/cometbft) from genesis.json and the node
    # key, and runs `cometbft node` itself. False: the app is only served over ABCI to a `cometbft
    # node` run by someone else (a testnet), which sends the genesis with InitChain.
    manage_cometbft: bool = True
    check_state: bool = True  # recompute the app hash from the state on disk before serving
    track_txs: bool = True  # False: nothing submits through this node (an app process without the API)
    timeouts: "ConsensusTimeouts | None" = None
    log_level: str = "*:error,state:info"
    verify_workers: int | None = None  # verifier processes of the ABCI server (None: one per core, 0: none)


def _telemetry_service(config: NodeConfig, node):
    """The broker, gateway and vault service [telemetry] enables, or None (paho is imported only then)."""
    if not config.telemetry.enabled:
        return None
    from .telemetry import TelemetryService

    return TelemetryService(config, node)


def _charging_service(config: NodeConfig, node: "Node"):
    """The CSMS [charging] enables, or None (the OCPP stack is imported only by nodes that run it)."""
    if not config.charging.enabled:
        return None
    from .charging import ChargingService

    return ChargingService(config, node)


def _passport_anchoring(config: NodeConfig, node) -> PassportAnchoring | None:
    """The access-log anchoring [passports] anchor enables, or None."""
    if not config.passports.anchor:
        return None
    key_path = config.home / config.passports.anchor_key
    if not key_path.exists():
        raise ValueError(f"passports.anchor_key: no key file {key_path}")
    return PassportAnchoring(node, load_key(key_path), config.passports.anchor_interval_s,
                             config.passports.verify_workers)


class Node:
    """Everything one node runs in this process: store, app, engine, the hosted issuer offices, passports and the CSMS."""

    def __init__(self, config: NodeConfig, comet: CometSettings | None = None, exit_on_failure: bool = False,
                 db_path: Path | None = None) -> None:
        """Assemble the node config.engine names; exit_on_failure: SIGTERM this process if the engine dies.

        db_path overrides the home's data/ledger.sqlite (a testnet keeps its own layout).
        """
        self.config = config
        self.exit_on_failure = exit_on_failure
        self.db_path = Path(db_path or config.db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._stopped = threading.Event()
        self._watcher: threading.Thread | None = None
        if config.engine == "solo":
            self.store = Store(self.db_path, retain_heights=config.retain_heights)
            self.app = CityApp(self.store, default_modules(), config.chain_id)
        elif config.engine == "cometbft":
            comet = comet or CometSettings()
            # CometBFT replays from its own block store any block the app lost in a power cut.
            self.store = Store(self.db_path, retain_heights=config.retain_heights, sync_every_block=False)
            self.app = CityApp(self.store, default_modules(), config.chain_id,
                               snapshot_interval=comet.snapshot_interval)
        else:
            raise ValueError(f"node.engine: expected 'solo' or 'cometbft', got {config.engine!r}")
        try:
            self.engine: Engine = self._build_solo() if config.engine == "solo" else self._build_cometbft(comet)
            self.issuers = open_hosted_issuers(config.home, self)
            self.passports = open_passport_store(config.home)
            self.passport_anchoring = _passport_anchoring(config, self)
            self.passport_service = self.passport_anchoring.service if self.passport_anchoring else ""
            self.charging = _charging_service(config, self)
            self.telemetry = _telemetry_service(config, self)
            # The REST API's vault routes answer through this (api/routes/vaults.py); None: 503.
            self.vaults = None if self.telemetry is None else self.telemetry.vaults
        except BaseException:
            self.store.close()
            raise

    # -- assembly ------------------------------------------------------------------------------

    def _build_solo(self) -> SoloEngine:
        """The solo engine; the genesis is applied here on first start (CometBFT sends it otherwise)."""
        self.genesis = load_genesis(self.config.genesis_path)
        if self.genesis["chain_id"] != self.config.chain_id:
            raise ValueError(f"node.chain_id: config says {self.config.chain_id!r}, "
                             f"genesis says {self.genesis['chain_id']!r}")
        self.ensure_genesis()
        return SoloEngine(self.app, self.config.solo)

    def ensure_genesis(self) -> None:
        """Apply the genesis on first start (a no-op check afterwards)."""
        app_state = json.dumps(self.genesis["app_state"], sort_keys=True, separators=(",", ":")).encode()
        self.app.init_chain(InitChainRequest(
            chain_id=self.genesis["chain_id"], time_ns=self.genesis.get("genesis_time_ns", 0) or time.time_ns()
            if self.store.get_meta("genesis_hash") is None else 0,
            initial_height=int(self.genesis.get("initial_height", 1)), app_state_bytes=app_state))

    def _build_cometbft(self, comet: CometSettings):
        """The CometBFT engine; with manage_cometbft, CometBFT's home is prepared for this one validator."""
        from ..engines.cometbft.node import CometEngine, verify_committed_state
        from ..engines.cometbft.setup import NodePorts

        if comet.check_state:
            verify_committed_state(self.store)
        ports = NodePorts(rpc=comet.rpc_port, p2p=comet.p2p_port, abci=comet.abci_port)
        engine = CometEngine(self.app, self.config.home / "cometbft", ports, comet.timeouts, comet.log_level,
                             manage_cometbft=comet.manage_cometbft, abci_address=comet.abci_address,
                             track_txs=comet.track_txs, verify_workers=comet.verify_workers)
        if comet.manage_cometbft:
            self._prepare_validator(engine)
        return engine

    def _prepare_validator(self, engine) -> None:
        """Prepare CometBFT's home from genesis.json, the node key being the one validator's key."""
        genesis = load_genesis(self.config.genesis_path)
        if genesis["chain_id"] != self.config.chain_id:
            raise ValueError(f"node.chain_id: config says {self.config.chain_id!r}, genesis says {genesis['chain_id']!r}")
        node_key = load_key(self.config.home / "node_key.json")
        listed = [v.get("pub_key") for v in genesis["app_state"].get("governance", {}).get("validators", [])]
        own = node_key.public_key.key.hex()
        if listed and listed != [own]:
            raise ValueError(f"genesis.app_state.governance.validators: `up --engine cometbft` runs one validator, "
                             f"this node ({own}); the genesis lists {listed}")
        engine.prepare(self.config.chain_id, genesis["app_state"], validator_seed=node_key.seed,
                       initial_height=int(genesis.get("initial_height", 1)),
                       genesis_time_ns=genesis.get("genesis_time_ns") or None)

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the engine; with exit_on_failure, watch it and stop this process if it dies."""
        tune_gc()
        try:
            self.engine.start()
        except BaseException:
            self.engine.stop()  # a half-started engine may hold a CometBFT process and the ABCI socket
            raise
        if self.charging is not None:
            try:
                self.charging.start()
            except BaseException:
                self.engine.stop()
                raise
        if self.telemetry is not None:
            try:
                self.telemetry.start()
            except BaseException:
                if self.charging is not None:
                    self.charging.stop()
                self.engine.stop()
                raise
        if self.passport_anchoring is not None:
            self.passport_anchoring.start()
        if self.exit_on_failure:
            self._watcher = threading.Thread(target=self._watch, name="engine-watch", daemon=True)
            self._watcher.start()
        for issuer in self.issuers.values():
            issuer.resume_publications()  # an office's publication cut short by the last stop (blocks needed)

    def _watch(self) -> None:
        # The API server owns the main thread; a dead engine stops it the way a signal would, and
        # whoever started the node reads failure() to exit non-zero.
        while self.engine.fatal_error() is None:
            if self._stopped.wait(FATAL_POLL_S):
                return
        log.error("stopping the node: %s", self.engine.fatal_error())
        os.kill(os.getpid(), signal.SIGTERM)

    def failure(self) -> BaseException | None:
        """Why the engine stopped for good, or None."""
        return self.engine.fatal_error()

    def stop(self) -> None:
        """Stop the CSMS and the engine, and close the stores."""
        self._stopped.set()
        if self.telemetry is not None:
            self.telemetry.stop()
        if self.charging is not None:
            self.charging.stop()
        for issuer in self.issuers.values():
            issuer.close()
        if self.passport_anchoring is not None:
            self.passport_anchoring.stop()
        self.engine.stop()
        self.passports.close()
        self.store.close()
