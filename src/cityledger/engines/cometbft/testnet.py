"""A local CometBFT network on the loopback: N validators and M full nodes, each a pair of processes.

Each node is a `cometbft node` process and an app process (APP_PROCESS_MODULE: the node that
node/ assembles, a CityApp on its own store served over ABCI). Everything lives under one root folder:

    root/testnet.json                 chain id, app settings and the nodes: names, roles, ports, ids, keys
    root/keys/<member>.json           consortium member keys of a generated genesis (secret)
    root/<node>/cometbft/             the CometBFT home (config, genesis, keys, block store)
    root/<node>/data/ledger.sqlite    the app's store
    root/<node>/run.json              the pids of the running processes
    root/<node>/cometbft.log, app.log

The processes are detached (their own sessions), so one command can start a network and another
can ask for its status or stop it. A pid is only signalled after /proc shows it still runs this
node's command line, so a recycled pid is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cityledger.engines.cometbft.config import set_config_values
from cityledger.engines.cometbft.rpc import RpcClient
from cityledger.engines.cometbft.setup import (
    DEFAULT_VALIDATOR_POWER,
    LOOPBACK,
    MAX_NODES,
    ConsensusTimeouts,
    NodePorts,
    allocate_ports,
    compute_genesis,
    find_cometbft,
    init_cometbft_home,
    read_genesis,
    set_persistent_peers,
    set_state_sync,
    write_genesis,
)

TESTNET_FILE = "testnet.json"
RUN_FILE = "run.json"
DEFAULT_CHAIN_ID = "city-testnet-1"
DEFAULT_SNAPSHOT_INTERVAL = 10  # heights between state-sync snapshots on every node
BUILTIN_APPS = ("kvstore",)  # CometBFT's own apps (--proxy_app), for comparison benchmarks
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
POLL_S = 0.1
# The app process's entry point. node/ assembles it; engines/ name it here only as the command to
# run, never importing it (engines sit below node/).
APP_PROCESS_MODULE = "cityledger.node.app_process"


class TestnetError(RuntimeError):
    """A testnet cannot be created, started or reached as asked."""


@dataclass(frozen=True)
class NodeSpec:
    """One node of a testnet as testnet.json records it."""

    name: str
    role: str  # "validator" or "full"
    ports: NodePorts
    node_id: str
    validator_pub_key: str  # hex

    @property
    def p2p_address(self) -> str:
        return f"{self.node_id}@{LOOPBACK}:{self.ports.p2p}"

    @property
    def rpc_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.rpc}"

    @property
    def api_url(self) -> str:
        """The node's REST API ('' if it serves none)."""
        return f"http://{LOOPBACK}:{self.ports.api}" if self.ports.api else ""


@dataclass(frozen=True)
class NodeStatus:
    """What `cityledger testnet status` shows for one node."""

    name: str
    role: str
    app_running: bool
    cometbft_running: bool
    height: int = 0
    app_hash: str = ""
    catching_up: bool = False
    n_peers: int = 0
    voting_power: int = 0
    error: str = ""


def compute_default_app_state(keys_dir: Path, members: int = 3) -> dict:
    """A small genesis app_state: `members` consortium members (keys written to keys_dir), funded."""
    from cityledger.core.files import write_secret_file
    from cityledger.core.keys import PrivateKey
    from cityledger.core.types import address_to_str
    from cityledger.modules.bank import UNIT

    keys_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(members):
        key = PrivateKey.generate()
        path = keys_dir / f"member{index}.json"
        secret = {"scheme": "ed25519", "seed": key.seed.hex(), "name": f"member{index}"}
        write_secret_file(path, json.dumps(secret) + "\n")
        entries.append({"name": f"member{index}", "address": address_to_str(key.address())})
    return {
        "governance": {"members": entries, "threshold": members // 2 + 1},
        "bank": {"allocations": [{"address": e["address"], "amount": 1_000_000 * UNIT} for e in entries]},
    }


class Testnet:
    """Creates, starts, inspects and stops a local network; see the module docstring for the layout."""

    def __init__(self, root: Path, chain_id: str, nodes: list[NodeSpec],
                 snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL, api: bool = True,
                 builtin_app: str | None = None, verify_workers: int | None = None) -> None:
        self.root = Path(root)
        self.chain_id = chain_id
        self.nodes = nodes
        self.snapshot_interval = snapshot_interval
        self.api = api  # each app process also serves the REST API
        self.builtin_app = builtin_app  # "kvstore": CometBFT runs its own app, no app processes
        self.verify_workers = verify_workers  # each app's verifier processes (None: one per core, 0: none)

    # -- creation ----------------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, validators: int = 4, full_nodes: int = 0, chain_id: str = DEFAULT_CHAIN_ID,
               app_state: dict | None = None, timeouts: ConsensusTimeouts | None = None,
               genesis_time_ns: int | None = None, snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
               api: bool = True, builtin_app: str | None = None, verify_workers: int | None = None) -> "Testnet":
        """Write the homes and the shared genesis of a new network (nothing is started).

        The genesis validators are the validator nodes' consensus keys, both in CometBFT's genesis
        and in app_state.governance.validators (which they replace), so the app and CometBFT agree.
        builtin_app="kvstore" makes every node run CometBFT's built-in kvstore app instead of the
        ledger (benchmarks compare against it); the other app settings then do not apply.
        verify_workers: each app process's verifier processes (engines/cometbft/stateless.py).
        """
        if builtin_app is not None and builtin_app not in BUILTIN_APPS:
            raise TestnetError(f"builtin_app: expected one of {BUILTIN_APPS} or None, got {builtin_app!r}")
        if snapshot_interval < 0:
            raise TestnetError(f"snapshot_interval: expected N >= 0, got {snapshot_interval}")
        if verify_workers is not None and verify_workers < 0:
            raise TestnetError(f"verify_workers: expected N >= 0 or None, got {verify_workers}")
        root = Path(root)
        if not 1 <= validators or validators + full_nodes > MAX_NODES or full_nodes < 0:
            raise TestnetError(f"validators/full_nodes: expected 1 <= validators and a total <= {MAX_NODES}, "
                               f"got {validators} and {full_nodes}")
        if (root / TESTNET_FILE).exists():
            raise TestnetError(f"{root} already holds a testnet ({TESTNET_FILE} exists); stop it and remove it first")
        root.mkdir(parents=True, exist_ok=True)
        roles = ["validator"] * validators + ["full"] * full_nodes
        names = [f"validator{i}" for i in range(validators)] + [f"full{i}" for i in range(full_nodes)]
        testnet = cls(root, chain_id, [], snapshot_interval, api and builtin_app is None, builtin_app, verify_workers)
        for name, role in zip(names, roles):
            testnet.nodes.append(testnet._init_node(name, role, timeouts))
        state = app_state if app_state is not None else compute_default_app_state(root / "keys")
        testnet._write_genesis(state, genesis_time_ns or time.time_ns())
        testnet._connect_peers(testnet.nodes)
        testnet.save()
        return testnet

    def _init_node(self, name: str, role: str, timeouts: ConsensusTimeouts | None) -> NodeSpec:
        taken = {port for n in self.nodes for port in (n.ports.rpc, n.ports.p2p, n.ports.abci, n.ports.api)}
        rpc, p2p, abci, api = allocate_ports(4, exclude=taken)
        ports = NodePorts(rpc=rpc, p2p=p2p, abci=abci, api=api if self.api else 0)
        identity = init_cometbft_home(self.cometbft_home(name), name, ports, timeouts)
        if self.builtin_app is not None:
            set_config_values(self.cometbft_home(name) / "config" / "config.toml", {"proxy_app": self.builtin_app})
        return NodeSpec(name, role, ports, identity.node_id, identity.validator_pub_key.hex())

    def _write_genesis(self, app_state: dict, genesis_time_ns: int) -> None:
        validators = [(n.name, bytes.fromhex(n.validator_pub_key), DEFAULT_VALIDATOR_POWER)
                      for n in self.nodes if n.role == "validator"]
        governance = dict(app_state.get("governance", {}))
        governance["validators"] = [{"pub_key": pub.hex(), "power": power} for _, pub, power in validators]
        state = {**app_state, "governance": governance}
        template = read_genesis(self.cometbft_home(self.nodes[0].name))
        genesis = compute_genesis(template, self.chain_id, genesis_time_ns, 1, validators, state)
        write_genesis([self.cometbft_home(n.name) for n in self.nodes], genesis, state)

    def _connect_peers(self, nodes: list[NodeSpec]) -> None:
        """Every node keeps dialing every other node of the network (a full mesh on the loopback)."""
        for node in nodes:
            peers = [other.p2p_address for other in self.nodes if other.name != node.name]
            set_persistent_peers(self.cometbft_home(node.name), peers)

    def add_node(self, name: str, state_sync_from: list[str] | None = None,
                 timeouts: ConsensusTimeouts | None = None) -> NodeSpec:
        """Add a full node that joins by block sync, or by state sync from the named nodes' RPC."""
        if any(n.name == name for n in self.nodes) or len(self.nodes) >= MAX_NODES:
            raise TestnetError(f"name: {name!r} is taken or the testnet has {MAX_NODES} nodes")
        node = self._init_node(name, "full", timeouts)
        self.nodes.append(node)
        shutil.copy(self.cometbft_home(self.nodes[0].name) / "config" / "genesis.json",
                    self.cometbft_home(name) / "config" / "genesis.json")
        set_persistent_peers(self.cometbft_home(name), [n.p2p_address for n in self.nodes if n.name != name])
        if state_sync_from:
            with self.rpc(state_sync_from[0]) as client:
                height = max(1, client.status().height - 1)
                trust_hash = client.call("block", height=str(height))["block_id"]["hash"]
            servers = [f"{LOOPBACK}:{self.node(n).ports.rpc}" for n in state_sync_from]
            set_state_sync(self.cometbft_home(name), servers * (2 if len(servers) == 1 else 1), height, trust_hash)
        self.save()
        return node

    # -- persistence -------------------------------------------------------------------------------

    def save(self) -> None:
        document = {"chain_id": self.chain_id, "snapshot_interval": self.snapshot_interval, "api": self.api,
                    "builtin_app": self.builtin_app, "verify_workers": self.verify_workers,
                    "nodes": [asdict(n) for n in self.nodes]}
        (self.root / TESTNET_FILE).write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def load(cls, root: Path) -> "Testnet":
        """Open the testnet created under root."""
        path = Path(root) / TESTNET_FILE
        if not path.exists():
            raise TestnetError(f"{root} holds no testnet ({TESTNET_FILE} missing): create one first")
        document = json.loads(path.read_text())
        nodes = [NodeSpec(n["name"], n["role"], NodePorts(**n["ports"]), n["node_id"], n["validator_pub_key"])
                 for n in document["nodes"]]
        return cls(Path(root), document["chain_id"], nodes, document.get("snapshot_interval", DEFAULT_SNAPSHOT_INTERVAL),
                   document.get("api", False), document.get("builtin_app"), document.get("verify_workers"))

    # -- paths -------------------------------------------------------------------------------------

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TestnetError(f"node: no node named {name!r} (have {[n.name for n in self.nodes]})")

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def cometbft_home(self, name: str) -> Path:
        return self.root / name / "cometbft"

    def db_path(self, name: str) -> Path:
        return self.root / name / "data" / "ledger.sqlite"

    def rpc(self, name: str, timeout_s: float = 10.0) -> RpcClient:
        return RpcClient(self.node(name).rpc_url, timeout_s)

    # -- processes ---------------------------------------------------------------------------------

    def start(self, names: list[str] | None = None, wait: bool = True) -> None:
        """Start the named nodes (all by default): app processes first, then CometBFT."""
        chosen = [self.node(n) for n in names] if names else list(self.nodes)
        if self.builtin_app is None:
            for node in chosen:
                self._start_app(node)
        for node in chosen:
            if self.builtin_app is None:
                self._wait_for_port(node.ports.abci, node.name, "app")
            self._start_cometbft(node)
        if wait:
            for node in chosen:
                self._wait_for_port(node.ports.rpc, node.name, "cometbft")
                if node.ports.api and self.builtin_app is None:
                    self._wait_for_port(node.ports.api, node.name, "app")

    def _start_app(self, node: NodeSpec) -> None:
        if self._running_pid(node.name, "app") is not None:
            return
        command = [sys.executable, "-m", APP_PROCESS_MODULE, "--db", str(self.db_path(node.name)),
                   "--chain-id", self.chain_id, "--address", f"tcp://{LOOPBACK}:{node.ports.abci}",
                   "--snapshot-interval", str(self.snapshot_interval)]
        if node.ports.api:
            command += ["--api-port", str(node.ports.api), "--rpc-port", str(node.ports.rpc)]
        if self.verify_workers is not None:
            command += ["--verify-workers", str(self.verify_workers)]
        self._spawn(node.name, "app", command)

    def _start_cometbft(self, node: NodeSpec) -> None:
        if self._running_pid(node.name, "cometbft") is not None:
            return
        command = [str(find_cometbft()), "node", "--home", str(self.cometbft_home(node.name))]
        self._spawn(node.name, "cometbft", command)

    def _spawn(self, name: str, kind: str, command: list[str]) -> None:
        with open(self.node_dir(name) / f"{kind}.log", "ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        pids = self._read_pids(name)
        pids[kind] = process.pid
        (self.node_dir(name) / RUN_FILE).write_text(json.dumps(pids) + "\n")
        # Until the child has exec'd, /proc shows this process's command line, and _running_pid
        # would take the new node for one that has exited already.
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._running_pid(name, kind) is None and process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S / 10)

    def _wait_for_port(self, port: int, name: str, kind: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._running_pid(name, kind) is None:
                raise TestnetError(f"{name}: the {kind} process exited; see {self.node_dir(name) / (kind + '.log')}:\n"
                                   f"{self.log_tail(name, kind)}")
            with socket.socket() as sock:
                if sock.connect_ex((LOOPBACK, port)) == 0:
                    return
            time.sleep(POLL_S)
        raise TestnetError(f"{name}: the {kind} process did not listen on port {port} within {START_TIMEOUT_S}s")

    def stop(self, names: list[str] | None = None, kill: bool = False) -> None:
        """Stop the named nodes (all by default): CometBFT first, then the apps; kill=True sends SIGKILL."""
        chosen = names or [n.name for n in self.nodes]
        for kind in ("cometbft", "app"):
            for name in chosen:
                self._signal(name, kind, signal.SIGKILL if kill else signal.SIGTERM)
            for name in chosen:
                self._wait_gone(name, kind)
        for name in chosen:
            (self.node_dir(name) / RUN_FILE).unlink(missing_ok=True)

    def _signal(self, name: str, kind: str, signum: int) -> None:
        pid = self._running_pid(name, kind)
        if pid is not None:
            os.kill(pid, signum)

    def _wait_gone(self, name: str, kind: str) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while self._running_pid(name, kind) is not None:
            if time.monotonic() > deadline:
                self._signal(name, kind, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT_S
            time.sleep(POLL_S)

    def _read_pids(self, name: str) -> dict[str, int]:
        path = self.node_dir(name) / RUN_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _running_pid(self, name: str, kind: str) -> int | None:
        """The pid of the node's process if it still runs this node's command (not a recycled pid)."""
        pid = self._read_pids(name).get(kind)
        if pid is None:
            return None
        _reap(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{pid}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None
        marker = str(self.node_dir(name)).encode() + b"/"
        return pid if marker in cmdline and state != b"Z" else None

    def wipe(self, name: str) -> None:
        """Delete a stopped node's chain data and app store (keys and config stay): it will resync."""
        if self._running_pid(name, "cometbft") or self._running_pid(name, "app"):
            raise TestnetError(f"{name}: stop the node before wiping it")
        data = self.cometbft_home(name) / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        state = {"height": "0", "round": 0, "step": 0}
        (data / "priv_validator_state.json").write_text(json.dumps(state) + "\n")
        shutil.rmtree(self.db_path(name).parent, ignore_errors=True)

    # -- inspection --------------------------------------------------------------------------------

    def status(self) -> list[NodeStatus]:
        """Each node's processes and, where its RPC answers, its height, app hash and peers."""
        return [self.node_status(node) for node in self.nodes]

    def node_status(self, node: NodeSpec) -> NodeStatus:
        app_running = self._running_pid(node.name, "app") is not None
        comet_running = self._running_pid(node.name, "cometbft") is not None
        if not comet_running:
            return NodeStatus(node.name, node.role, app_running, comet_running)
        try:
            with self.rpc(node.name, timeout_s=2.0) as client:
                chain = client.status()
                peers = client.n_peers()
        except Exception as exc:  # a node still starting or stuck: report it, do not fail the others
            return NodeStatus(node.name, node.role, app_running, comet_running, error=str(exc) or type(exc).__name__)
        return NodeStatus(node.name, node.role, app_running, comet_running, chain.height, chain.app_hash,
                          chain.catching_up, peers, chain.voting_power)

    def heights(self, names: list[str] | None = None) -> dict[str, int]:
        """Each named (default: running) node's latest height; 0 where its RPC does not answer."""
        chosen = names or [n.name for n in self.nodes if self._running_pid(n.name, "cometbft")]
        out = {}
        for name in chosen:
            try:
                with self.rpc(name, timeout_s=2.0) as client:
                    out[name] = client.status().height
            except Exception:
                out[name] = 0
        return out

    def wait_for_height(self, height: int, names: list[str] | None = None, timeout_s: float = 60.0) -> None:
        """Wait until every named (default: running) node has committed height."""
        deadline = time.monotonic() + timeout_s
        while True:
            heights = self.heights(names)
            if heights and min(heights.values()) >= height:
                return
            if time.monotonic() > deadline:
                raise TestnetError(f"height {height} not reached within {timeout_s}s: {heights}")
            time.sleep(POLL_S * 2)

    def log_tail(self, name: str, kind: str = "cometbft", max_chars: int = 4000) -> str:
        path = self.node_dir(name) / f"{kind}.log"
        return path.read_text(errors="replace")[-max_chars:] if path.exists() else ""


def _reap(pid: int) -> None:
    """Collect a child that has exited, so that it does not linger as a zombie of this process."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
