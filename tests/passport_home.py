"""A node home whose car maker is also battery manufacturer and vehicle maker, and whose own passport
service commits report roots (shared by the battery simulation tests)."""

from __future__ import annotations

import json
from pathlib import Path

from cityledger.core.keys import PrivateKey
from cityledger.modules.batteries import ROLE_MANUFACTURER, ROLE_PASSPORT_SERVICE, ROLE_VEHICLE_MAKER
from cityledger.node.home import NodeConfig, PassportsConfig, init_home, load_config, load_key
from cityledger.node.issuers import compute_manufacturer_entry


def passport_home(home: Path) -> tuple[NodeConfig, PrivateKey]:
    """Write the home; its config (20 ms blocks, hourly log anchoring) and the car maker's key."""
    init_home(home)
    genesis = json.loads((home / "genesis.json").read_text())
    maker = load_key(home / "keys" / "car-maker.json")
    dids = genesis["app_state"]["identity"]["dids"]
    entry = next(e for e in dids if e["controller"]["keys"][0]["key"] == maker.public_key.key.hex())
    entry["accreditations"] += [ROLE_MANUFACTURER, ROLE_VEHICLE_MAKER]
    service = compute_manufacturer_entry(load_key(home / "node_key.json"))  # the node's own passport service
    service["accreditations"] = [ROLE_PASSPORT_SERVICE]
    dids.append(service)
    (home / "genesis.json").write_text(json.dumps(genesis))
    config = load_config(home)
    config.solo.block_interval_ms = 20
    config.passports = PassportsConfig(anchor=True, anchor_interval_s=3600)
    return config, maker
