"""A node's home folder: config.toml, genesis.json, node_key.json, data/.

`cityledger init` writes it; `cityledger up` does so on first run. The genesis gives the chain id,
the consortium (organisations, not people), the validators and the initial allocations.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..core.keys import PrivateKey
from ..core.types import address_to_str
from ..engines.solo.engine import SoloConfig
from ..engines.solo.mempool import MempoolConfig
from ..modules.bank import UNIT
from ..offchain.charging.settings import (
    DEFAULT_MARGIN_MICRO,
    DEFAULT_PORT,
    SESSION_TIMEOUT_S,
    MAX_SESSION_TIMEOUT_S,
    MIN_SESSION_TIMEOUT_S,
)
from ..offchain.charging.tariff import MAX_PRICE_MICRO
from ..offchain.passport.anchoring import ANCHOR_INTERVAL_S, MAX_ANCHOR_INTERVAL_S
from ..offchain.passport.reports import MAX_VERIFY_WORKERS
from ..offchain.telemetry.gateway import INTERVAL_S, MAX_INTERVAL_S
from ..offchain.telemetry.shards import MAX_SHARD_PROCESSES, default_gateways
from ..offchain.vaults.backends import VaultsSettings, load_vaults_settings
from .keyfiles import load_key, write_key_file  # load_key: read a key file of this home

DEFAULT_HOME = Path(os.environ.get("CITYLEDGER_HOME", Path.home() / ".cityledger"))
DEFAULT_CHAIN_ID = "city-local-1"
CONSORTIUM = ("City Government", "Car Maker", "Grid Operator", "Insurer", "Recycler")

CONFIG_TEMPLATE = """# cityledger node configuration
[node]
chain_id = "{chain_id}"
engine = "solo"            # solo | cometbft

[api]
host = "127.0.0.1"
port = {port}

[storage]
retain_heights = 1000      # past heights kept for queries with proofs

[solo]
block_interval_ms = 200
max_block_txs = 10000
max_block_bytes = 16777216
create_empty_blocks = false

[mempool]
max_txs = 100000
max_bytes = 268435456
sender_quota = 20000
ttl_blocks = 100

[telemetry]
enabled = false            # run the project's own Mosquitto and the telemetry gateway
host = "127.0.0.1"         # where the broker listens (loopback, or a LAN address for devices)
port = 0                   # 0: a free port picked at each start
interval_s = 60            # one Merkle root of the records received per interval
gateways = 1               # gateway processes (1: in the node's process; init --telemetry: one per core)
gateway_did = ""           # organisation DID accredited for telemetry-gateway: anchors the roots
gateway_key = ""           # its controller's key file, in this home
vault_service_did = ""     # organisation DID accredited for vault-service: signs and anchors the access log
vault_service_key = ""     # its controller's key file, in this home

[vaults]
backend = "sqlite"         # sqlite: under this home | s3: an S3-compatible object store (docs/SCALING.md)
endpoint = ""              # s3: the S3 URL; "" runs the node's own SeaweedFS under telemetry/vaults/seaweedfs
bucket = "cityledger-vaults"
credentials_file = "vault_s3_credentials.json"   # s3 with an endpoint: {{"access_key": ..., "secret_key": ...}}, mode 600

[charging]
enabled = false            # run the charging station management system (CSMS, docs/CHARGING.md)
host = "127.0.0.1"         # where chargers and vehicles connect (a LAN address for real chargers)
port = 9000                # ws://host:port/ocpp/<charger id>; 0: a free port picked at each start
operator_key = "node_key.json"   # key file (in this home) that signs receipts and names the operator
per_kwh_micro = 300000     # tariff, integer micro-credits
per_minute_micro = 0
per_session_micro = 0
margin_micro = 1000000     # how far a vehicle's vouchers may trail the running cost before a stop
session_timeout_s = 86400  # a session without an event for this long is closed, its newest voucher redeemed
store_sync = "normal"      # charging/csms.sqlite: "normal" survives a killed process, "full" also a power cut
tls_cert = ""              # wss:// (security profile 2): certificate file in this home (charging tls-init)
tls_key = ""               # its private key (mode 600), in this home
tls_client_ca = ""         # profile 3: chargers present certificates this CA issued (charging/tls/ca.pem)

[passports]
anchor = false             # anchor the passports' access-log heads: one tx per interval (docs/BATTERY_PASSPORT.md)
anchor_interval_s = 60     # seconds between two anchors
anchor_key = "node_key.json"   # key file (in this home) whose DID is accredited as battery-passport-service
verify_workers = 1         # processes verifying SoH report batches' BMS signatures (1: in the request's thread)
"""


@dataclass(frozen=True)
class TelemetryConfig:
    """The [telemetry] section: the broker's address and the gateway's anchoring interval."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    interval_s: int = INTERVAL_S
    gateways: int = 1
    gateway_did: str = ""
    gateway_key: str = ""
    vault_service_did: str = ""
    vault_service_key: str = ""


@dataclass(frozen=True)
class ChargingConfig:
    """The [charging] section: where the CSMS listens, whose key it signs with, and its tariff."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    operator_key: str = "node_key.json"
    per_kwh_micro: int = 300_000
    per_minute_micro: int = 0
    per_session_micro: int = 0
    margin_micro: int = DEFAULT_MARGIN_MICRO
    session_timeout_s: int = SESSION_TIMEOUT_S
    store_sync: str = "normal"
    tls_cert: str = ""  # PEM files in the home; both set: the CSMS serves wss:// (security profile 2)
    tls_key: str = ""
    tls_client_ca: str = ""  # set: chargers log in with a certificate this CA issued (profile 3)


@dataclass(frozen=True)
class PassportsConfig:
    """The [passports] section: whether and how often the node anchors its passports' access logs."""

    anchor: bool = False
    anchor_interval_s: int = ANCHOR_INTERVAL_S
    anchor_key: str = "node_key.json"
    verify_workers: int = 1  # processes verifying SoH report signatures; 1: in the request's thread


@dataclass
class NodeConfig:
    home: Path
    chain_id: str = DEFAULT_CHAIN_ID
    engine: str = "solo"
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    retain_heights: int = 1000
    solo: SoloConfig = field(default_factory=SoloConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    charging: ChargingConfig = field(default_factory=ChargingConfig)
    passports: PassportsConfig = field(default_factory=PassportsConfig)
    vaults: VaultsSettings = field(default_factory=VaultsSettings)

    @property
    def charging_path(self) -> Path:
        """Where the CSMS keeps its files: the charger registry chargers.json."""
        return self.home / "charging"

    @property
    def telemetry_path(self) -> Path:
        """Where the broker (broker/), the gateway (gateway/) and the owners' vaults (vaults/) keep their files."""
        return self.home / "telemetry"

    @property
    def db_path(self) -> Path:
        return self.home / "data" / "ledger.sqlite"

    @property
    def genesis_path(self) -> Path:
        return self.home / "genesis.json"


def init_home(home: Path, chain_id: str = DEFAULT_CHAIN_ID, port: int = 8080, members: int = 5,
              overwrite: bool = False, issuers: bool = True, telemetry: bool = False) -> dict:
    """Write config.toml, genesis.json, node_key.json and the consortium's keys; return a summary.

    With issuers, the city's ID office and transport office get folders under issuers/ and their
    DIDs and accreditations go into the genesis (node/issuers.py); the car maker's key also
    controls a DID accredited as device manufacturer. With telemetry, the node's gateway and vault
    service get keys and accredited DIDs, and [telemetry] is enabled.
    """
    home = Path(home)
    if (home / "config.toml").exists() and not overwrite:
        raise FileExistsError(f"home: {home} is already initialised (config.toml exists)")
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "keys").mkdir(parents=True, exist_ok=True)
    node_key = PrivateKey.generate()
    write_key_file(home / "node_key.json", node_key)
    member_entries, member_keys = [], {}
    for name in CONSORTIUM[:members]:
        key = PrivateKey.generate()
        slug = name.lower().replace(" ", "-")
        write_key_file(home / "keys" / f"{slug}.json", key, name)
        member_entries.append({"name": name, "address": address_to_str(key.address())})
        member_keys[name] = key
    genesis = {
        "chain_id": chain_id,
        "initial_height": 1,
        "app_state": {
            "governance": {
                "members": member_entries,
                "threshold": len(member_entries) // 2 + 1,
                "validators": [{"pub_key": node_key.public_key.key.hex(), "power": 10}],
            },
            "bank": {"allocations": [{"address": m["address"], "amount": 1_000_000 * UNIT}
                                     for m in member_entries]},
        },
    }
    config = CONFIG_TEMPLATE.format(chain_id=chain_id, port=port)
    dids = []
    if issuers:
        from .issuers import compute_manufacturer_entry, init_issuers

        dids = init_issuers(home, f"http://127.0.0.1:{port}")
        if "Car Maker" in member_keys:
            dids.append(compute_manufacturer_entry(member_keys["Car Maker"]))
    if telemetry:
        entries, settings = _telemetry_services(home)
        dids += entries
        config = set_section(config, "telemetry", settings)
    if dids:
        genesis["app_state"]["identity"] = {"dids": dids}
    (home / "genesis.json").write_text(json.dumps(genesis, indent=2, sort_keys=True) + "\n")
    (home / "config.toml").write_text(config)
    return {"home": str(home), "chain_id": chain_id, "members": member_entries, "telemetry": telemetry}


def _telemetry_services(home: Path) -> tuple[list[dict], dict[str, object]]:
    """Keys for the node's telemetry gateway and vault service: their genesis DID entries (accredited)
    and the [telemetry] settings that name them."""
    from ..modules.consent.messages import GATEWAY_TYPE, VAULT_SERVICE_TYPE
    from ..modules.identity import compute_did
    from .issuers import compute_organisation_entry

    # One gateway process per core: the configuration `cityledger bench telemetry` measures.
    entries, settings = [], {"enabled": True, "gateways": default_gateways()}
    for name, accreditation in (("gateway", GATEWAY_TYPE), ("vault_service", VAULT_SERVICE_TYPE)):
        key = PrivateKey.generate()
        file_name = f"keys/{name.replace('_', '-')}.json"
        write_key_file(home / file_name, key, name.replace("_", " "))
        entries.append(compute_organisation_entry(key, [accreditation]))
        settings |= {f"{name}_did": compute_did(key.signer(), b""), f"{name}_key": file_name}
    return entries, settings


def set_section(text: str, section: str, values: dict[str, object]) -> str:
    """The config text with `values` set in `[section]` (each key's line replaced, its comment kept).

    A key the section lacks (a home written before the setting existed) is added at the section's end.
    """
    if f"[{section}]\n" not in text:
        text = text.rstrip("\n") + f"\n\n[{section}]\n"
    head, rest = text.split(f"[{section}]\n", 1)
    body, sep, tail = rest.partition("\n[")
    lines, missing = [], dict(values)
    for line in body.split("\n"):
        name = line.split("=", 1)[0].strip()
        if name in values:
            comment = line[line.index("#"):] if "#" in line else ""
            line = _setting_line(name, missing.pop(name)) + (" " + comment if comment else "")
        lines.append(line)
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    lines[last + 1:last + 1] = [_setting_line(name, value).rstrip() for name, value in missing.items()]
    return head + f"[{section}]\n" + "\n".join(lines) + sep + tail


def _setting_line(name: str, value: object) -> str:
    """`name = value` padded to the template's comment column (TOML's booleans and basic strings are JSON's)."""
    return f"{name} = {json.dumps(value)}".ljust(26)


def load_config(home: Path) -> NodeConfig:
    """Read config.toml; raise ValueError naming the bad setting."""
    path = Path(home) / "config.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"home: {home} has no config.toml; run `cityledger init` first") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    node, api, storage = raw.get("node", {}), raw.get("api", {}), raw.get("storage", {})
    solo, mempool = raw.get("solo", {}), raw.get("mempool", {})
    config = NodeConfig(home=Path(home))
    config.chain_id = _get(node, "chain_id", str, config.chain_id, "node")
    config.engine = _get(node, "engine", str, config.engine, "node")
    if config.engine not in ("solo", "cometbft"):
        raise ValueError(f"node.engine: expected 'solo' or 'cometbft', got {config.engine!r}")
    config.api_host = _get(api, "host", str, config.api_host, "api")
    config.api_port = _get(api, "port", int, config.api_port, "api")
    config.retain_heights = _get(storage, "retain_heights", int, config.retain_heights, "storage")
    pool = MempoolConfig(**{k: _get(mempool, k, int, getattr(MempoolConfig(), k), "mempool")
                            for k in ("max_txs", "max_bytes", "sender_quota", "ttl_blocks")})
    config.solo = SoloConfig(
        block_interval_ms=_get(solo, "block_interval_ms", int, 200, "solo"),
        max_block_txs=_get(solo, "max_block_txs", int, 10_000, "solo"),
        max_block_bytes=_get(solo, "max_block_bytes", int, 16 * 1024 * 1024, "solo"),
        create_empty_blocks=_get(solo, "create_empty_blocks", bool, False, "solo"),
        mempool=pool,
    )
    config.telemetry = _load_telemetry(raw.get("telemetry", {}))
    config.charging = _load_charging(raw.get("charging", {}))
    config.passports = _load_passports(raw.get("passports", {}))
    config.vaults = load_vaults_settings(raw.get("vaults", {}))
    return config


def _load_passports(section: dict) -> PassportsConfig:
    """The [passports] section, checked."""
    default = PassportsConfig()
    values = {name: _get(section, name, type(getattr(default, name)), getattr(default, name), "passports")
              for name in PassportsConfig.__dataclass_fields__}
    unknown = sorted(set(section) - set(values))
    if unknown:
        raise ValueError(f"passports.{unknown[0]}: unknown setting; expected one of {', '.join(values)}")
    passports = PassportsConfig(**values)
    if not 1 <= passports.anchor_interval_s <= MAX_ANCHOR_INTERVAL_S:
        raise ValueError(f"passports.anchor_interval_s: expected 1 to {MAX_ANCHOR_INTERVAL_S}, "
                         f"got {passports.anchor_interval_s}")
    if not 1 <= passports.verify_workers <= MAX_VERIFY_WORKERS:
        raise ValueError(f"passports.verify_workers: expected 1 to {MAX_VERIFY_WORKERS}, "
                         f"got {passports.verify_workers}")
    check_home_file(passports.anchor_key, "passports.anchor_key", "a key file")
    return passports


def check_home_file(value: str, name: str, what: str) -> None:
    """Refuse a setting that names no file inside the home (empty, absolute, or climbing out with ..)."""
    path = Path(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{name}: expected {what} inside the home, got {value[:80]!r}")


def _load_telemetry(section: dict) -> TelemetryConfig:
    """The [telemetry] section, checked."""
    default = TelemetryConfig()
    telemetry = TelemetryConfig(
        enabled=_get(section, "enabled", bool, default.enabled, "telemetry"),
        host=_get(section, "host", str, default.host, "telemetry"),
        port=_get(section, "port", int, default.port, "telemetry"),
        interval_s=_get(section, "interval_s", int, default.interval_s, "telemetry"),
        gateways=_get(section, "gateways", int, default.gateways, "telemetry"),
        **{name: _get(section, name, str, "", "telemetry")
           for name in ("gateway_did", "gateway_key", "vault_service_did", "vault_service_key")},
    )
    unknown = sorted(set(section) - set(TelemetryConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"telemetry.{unknown[0]}: unknown setting; expected one of "
                         f"{', '.join(TelemetryConfig.__dataclass_fields__)}")
    if telemetry.port > 65535:
        raise ValueError(f"telemetry.port: expected 0 (any free port) to 65535, got {telemetry.port}")
    if not 1 <= telemetry.interval_s <= MAX_INTERVAL_S:
        raise ValueError(f"telemetry.interval_s: expected 1 to {MAX_INTERVAL_S}, got {telemetry.interval_s}")
    if not 1 <= telemetry.gateways <= MAX_SHARD_PROCESSES:
        raise ValueError(f"telemetry.gateways: expected 1 to {MAX_SHARD_PROCESSES} gateway processes, "
                         f"got {telemetry.gateways}")
    return telemetry


def _load_charging(section: dict) -> ChargingConfig:
    """The [charging] section, checked."""
    default = ChargingConfig()
    values = {name: _get(section, name, type(getattr(default, name)), getattr(default, name), "charging")
              for name in ChargingConfig.__dataclass_fields__}
    unknown = sorted(set(section) - set(values))
    if unknown:
        raise ValueError(f"charging.{unknown[0]}: unknown setting; expected one of {', '.join(values)}")
    charging = ChargingConfig(**values)
    if charging.port > 65535:
        raise ValueError(f"charging.port: expected 0 (any free port) to 65535, got {charging.port}")
    if not charging.host:
        raise ValueError("charging.host: expected an address to listen on, got ''")
    check_home_file(charging.operator_key, "charging.operator_key", "a key file")
    if bool(charging.tls_cert) != bool(charging.tls_key):
        raise ValueError("charging.tls_key: expected tls_cert and tls_key both set (wss://) or both empty (ws://), "
                         f"got tls_cert={charging.tls_cert[:80]!r}, tls_key={charging.tls_key[:80]!r}")
    if charging.tls_client_ca and not charging.tls_cert:
        raise ValueError("charging.tls_client_ca: client certificates (profile 3) need TLS: set tls_cert and tls_key")
    for name in ("tls_cert", "tls_key", "tls_client_ca"):
        if getattr(charging, name):
            check_home_file(getattr(charging, name), f"charging.{name}", "a PEM file")
    if not MIN_SESSION_TIMEOUT_S <= charging.session_timeout_s <= MAX_SESSION_TIMEOUT_S:
        raise ValueError(f"charging.session_timeout_s: expected {MIN_SESSION_TIMEOUT_S} to {MAX_SESSION_TIMEOUT_S}, "
                         f"got {charging.session_timeout_s}")
    if charging.store_sync not in ("normal", "full"):
        raise ValueError(f"charging.store_sync: expected 'normal' or 'full', got {charging.store_sync[:40]!r}")
    for name in ("per_kwh_micro", "per_minute_micro", "per_session_micro", "margin_micro"):
        if getattr(charging, name) > MAX_PRICE_MICRO:
            raise ValueError(f"charging.{name}: expected an integer 0 to {MAX_PRICE_MICRO}, "
                             f"got {getattr(charging, name)}")
    return charging


def _get(section: dict, name: str, kind: type, default, where: str):
    value = section.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{where}.{name}: expected {kind.__name__}, got {value!r}")
    if kind is int and value < 0:
        raise ValueError(f"{where}.{name}: expected a non-negative integer, got {value}")
    return value


def load_genesis(path: Path) -> dict:
    """Read genesis.json; raise ValueError naming what is missing."""
    try:
        genesis = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    for name in ("chain_id", "app_state"):
        if name not in genesis:
            raise ValueError(f"{path}: missing field {name!r}")
    return genesis
