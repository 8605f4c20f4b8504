"""Preparing CometBFT homes: the binary, `cometbft init`, config.toml, keys and genesis.json.

A CometBFT home holds config/config.toml, config/genesis.json, config/node_key.json (the P2P
identity) and config/priv_validator_key.json (the consensus key). Every node of a network gets the
same genesis.json; its app_state is the ledger's genesis app_state, written as compact JSON with
sorted keys so that the bytes InitChain hands the app are the same on every node and the same as
the solo engine's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cityledger.core.files import write_secret_file
from cityledger.engines.cometbft.config import ConfigValue, set_config_values

COMETBFT_VERSION = "0.38.25"
# src/cityledger/engines/cometbft/setup.py -> the repository root, where make puts .tools/bin.
_REPO_ROOT = Path(__file__).resolve().parents[4]
ENV_COMETBFT = "CITYLEDGER_COMETBFT"
LOOPBACK = "127.0.0.1"
DEFAULT_VALIDATOR_POWER = 10
MAX_NODES = 64
STATE_SYNC_DISCOVERY_S = 5
MIN_LISTEN_PORT = 20000


class CometSetupError(RuntimeError):
    """CometBFT is missing, of the wrong version, or a home cannot be prepared."""


def find_cometbft() -> Path:
    """The cometbft binary: $CITYLEDGER_COMETBFT, else <repo>/.tools/bin/cometbft, else PATH."""
    candidates = [os.environ.get(ENV_COMETBFT), _REPO_ROOT / ".tools" / "bin" / "cometbft", shutil.which("cometbft")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise CometSetupError(
        f"cometbft {COMETBFT_VERSION} not found: run `make install` (scripts/install_cometbft.sh) "
        f"or set {ENV_COMETBFT}"
    )


@dataclass(frozen=True)
class NodePorts:
    """The loopback ports of one node: CometBFT RPC, CometBFT P2P, the app's ABCI socket and REST API."""

    rpc: int
    p2p: int
    abci: int
    api: int = 0  # 0: no REST API


@dataclass(frozen=True)
class ConsensusTimeouts:
    """Consensus timeouts for a local network; block time is about commit_ms plus the rounds' work."""

    propose_ms: int = 1000
    prevote_ms: int = 300
    precommit_ms: int = 300
    commit_ms: int = 200
    empty_block_interval_ms: int = 1000  # an empty block at least this often when idle


@dataclass(frozen=True)
class NodeIdentity:
    """What others need to know about a node: its P2P id and its consensus key."""

    node_id: str  # hex of the first 20 bytes of SHA-256 of the node key's public key
    validator_pub_key: bytes  # Ed25519, 32 bytes
    validator_address: bytes  # first 20 bytes of SHA-256 of validator_pub_key


def compute_listen_port_range() -> tuple[int, int]:
    """Ports to listen on: below the kernel's ephemeral range, so that no outgoing connection takes one."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (MIN_LISTEN_PORT, max(MIN_LISTEN_PORT + 1000, low - 1))


def allocate_ports(count: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """count distinct free TCP ports on the loopback, none in exclude.

    Ports handed out by bind(0) come from the ephemeral range, which every outgoing connection
    (CometBFT's P2P dials) draws from too, so a port chosen now could be taken by the time its
    node starts; these come from below that range instead, picked at random and checked free.
    """
    low, high = compute_listen_port_range()
    chosen: list[int] = []
    for _ in range(count * 50):
        if len(chosen) == count:
            return chosen
        port = random.randint(low, high)
        if port in exclude or port in chosen:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        chosen.append(port)
    if len(chosen) == count:
        return chosen
    raise CometSetupError(f"could not find {count} free loopback ports in {low}-{high}")


def compute_address(pub_key: bytes) -> bytes:
    """CometBFT's address of an Ed25519 key: the first 20 bytes of its SHA-256."""
    return hashlib.sha256(pub_key).digest()[:20]


def compute_rfc3339(time_ns: int) -> str:
    """Integer nanoseconds since the epoch as the RFC 3339 time CometBFT's genesis uses."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def compute_node_config(moniker: str, ports: NodePorts, timeouts: ConsensusTimeouts,
                        log_level: str) -> dict[str, ConfigValue]:
    """The config.toml settings of a node on the loopback (peers are set separately)."""
    return {
        "moniker": moniker,
        "proxy_app": f"tcp://{LOOPBACK}:{ports.abci}",
        "log_level": log_level,
        "rpc.laddr": f"tcp://{LOOPBACK}:{ports.rpc}",
        "rpc.max_request_batch_size": 2000,  # the engine submits txs in JSON-RPC batches
        "rpc.max_body_bytes": 64 * 1024 * 1024,
        "p2p.laddr": f"tcp://{LOOPBACK}:{ports.p2p}",
        "p2p.external_address": f"{LOOPBACK}:{ports.p2p}",
        "p2p.pex": False,  # the peers are all listed: no discovery needed
        "p2p.addr_book_strict": False,  # loopback addresses are not routable
        "p2p.allow_duplicate_ip": True,  # every node is on 127.0.0.1
        "p2p.flush_throttle_timeout": "10ms",
        "mempool.size": 50_000,
        "mempool.cache_size": 100_000,
        "consensus.timeout_propose": f"{timeouts.propose_ms}ms",
        "consensus.timeout_prevote": f"{timeouts.prevote_ms}ms",
        "consensus.timeout_precommit": f"{timeouts.precommit_ms}ms",
        "consensus.timeout_commit": f"{timeouts.commit_ms}ms",
        "consensus.create_empty_blocks_interval": f"{timeouts.empty_block_interval_ms}ms",
        "consensus.peer_gossip_sleep_duration": "20ms",
    }


def init_cometbft_home(home: Path, moniker: str, ports: NodePorts, timeouts: ConsensusTimeouts | None = None,
                       validator_seed: bytes | None = None, log_level: str = "*:error,state:info") -> NodeIdentity:
    """Run `cometbft init` in home (once), set its config for the loopback, and return its identity.

    validator_seed, a 32-byte Ed25519 seed, replaces the generated consensus key, so that a ledger
    node's own key is its validator key.
    """
    home = Path(home)
    if not (home / "config" / "config.toml").exists():
        result = subprocess.run([str(find_cometbft()), "init", "--home", str(home)], capture_output=True, text=True)
        if result.returncode != 0:
            raise CometSetupError(f"cometbft init --home {home} failed: {result.stderr.strip()}")
    if validator_seed is not None:
        write_validator_key(home, validator_seed)
    settings = compute_node_config(moniker, ports, timeouts or ConsensusTimeouts(), log_level)
    set_config_values(home / "config" / "config.toml", settings)
    return read_identity(home)


def write_validator_key(home: Path, seed: bytes) -> None:
    """Write priv_validator_key.json for an Ed25519 seed (the signing state file is left alone)."""
    from nacl.signing import SigningKey

    if len(seed) != 32:
        raise ValueError(f"validator_seed: expected 32 bytes, got {len(seed)}")
    pub_key = bytes(SigningKey(seed).verify_key)
    document = {
        "address": compute_address(pub_key).hex().upper(),
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(pub_key).decode()},
        "priv_key": {"type": "tendermint/PrivKeyEd25519", "value": base64.b64encode(seed + pub_key).decode()},
    }
    path = home / "config" / "priv_validator_key.json"
    write_secret_file(path, json.dumps(document, indent=2) + "\n")


def read_identity(home: Path) -> NodeIdentity:
    """The node id and validator key of an initialised home."""
    node_key = json.loads((home / "config" / "node_key.json").read_text())
    node_pub = base64.b64decode(node_key["priv_key"]["value"])[32:]
    validator = json.loads((home / "config" / "priv_validator_key.json").read_text())
    pub_key = base64.b64decode(validator["pub_key"]["value"])
    return NodeIdentity(compute_address(node_pub).hex(), pub_key, compute_address(pub_key))


def compute_genesis(template: dict, chain_id: str, genesis_time_ns: int, initial_height: int,
                    validators: list[tuple[str, bytes, int]], app_state: dict) -> dict:
    """A CometBFT genesis document from `cometbft init`'s (for its consensus params)."""
    genesis = dict(template)
    genesis.update({
        "chain_id": chain_id,
        "genesis_time": compute_rfc3339(genesis_time_ns),
        "initial_height": str(initial_height),
        "validators": [
            {
                "address": compute_address(pub_key).hex().upper(),
                "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(pub_key).decode()},
                "power": str(power),
                "name": name,
            }
            for name, pub_key, power in validators
        ],
        "app_hash": "",
    })
    genesis.pop("app_state", None)
    return genesis


def write_genesis(homes: list[Path], genesis: dict, app_state: dict) -> None:
    """Write the same genesis.json to every home; app_state goes in as compact, sorted JSON."""
    app_state_json = json.dumps(app_state, sort_keys=True, separators=(",", ":"))
    placeholder = "\u0000app_state\u0000"
    text = json.dumps({**genesis, "app_state": placeholder}, indent=2)
    text = text.replace(json.dumps(placeholder), app_state_json) + "\n"
    for home in homes:
        (Path(home) / "config" / "genesis.json").write_text(text)


def read_genesis(home: Path) -> dict:
    """The genesis.json of a home."""
    return json.loads((Path(home) / "config" / "genesis.json").read_text())


def set_persistent_peers(home: Path, peers: list[str]) -> None:
    """Set the 'id@host:port' peers a node keeps dialing."""
    set_config_values(Path(home) / "config" / "config.toml", {"p2p.persistent_peers": ",".join(peers)})


def set_state_sync(home: Path, rpc_servers: list[str], trust_height: int, trust_hash: str) -> None:
    """Make a fresh node join by state sync from the given RPC servers (two or more, 'host:port')."""
    set_config_values(Path(home) / "config" / "config.toml", {
        "statesync.enable": True,
        "statesync.rpc_servers": ",".join(rpc_servers),
        "statesync.trust_height": trust_height,
        "statesync.trust_hash": trust_hash,
        "statesync.discovery_time": f"{STATE_SYNC_DISCOVERY_S}s",  # CometBFT's minimum; its default is 15s
    })
