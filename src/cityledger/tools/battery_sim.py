"""Simulated EV batteries reporting their state of health: a fleet of BMSs, day by day, against a node.

    cityledger battery simulate --batteries N --days D --as maker [--seed S] [--start 2027-03-01]

Each battery is a registered device (its BMS key signs its reports) with a passport (a Tractus-X
document stored in the node's passport service and registered on chain), placed on the market and
installed in a registered vehicle. Every simulated day each BMS (offchain/passport/ageing.py: the
PyBaMM-derived tables, a seeded per-battery spread, numpy only) produces its `performance.dynamic`
and signs the report {"salt", "dynamic"} (sdk.passports.report_item); the day's reports go to the
node in batches of up to MAX_REPORT_BATCH (POST /passports/reports, Client.post_reports), which
verifies them, stores them encrypted under the legitimate tier and commits one root per batch on
chain (anchor_report_root). The node needs its passport service on ([passports] anchor), its key
accredited as battery-passport-service; the organisation acting (--as) must be accredited as device
manufacturer, battery manufacturer and vehicle maker.

The pieces that need no node (keys, documents, the day's reports and messages) are plain functions,
so tests drive the same code through an in-process ledger.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..core.hashing import sha256
from ..core.keys import PrivateKey
from ..core.tx import MAX_MESSAGES_PER_TX
from ..modules.batteries import Install, PlaceOnMarket, RegisterPassport
from ..modules.devices import compute_device_did
from ..offchain.identity.devices import build_registration
from ..offchain.passport import compute_tier_hash, split
from ..offchain.passport.ageing import SimulatedBms, fleet
from ..offchain.passport.reports import MAX_REPORT_BATCH, MIN_SALT_HEX
from ..sdk.passports import report_item
from ..wire.batteries import SignedReportBody

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "offchain" / "passport" / "examples" / "battery_pass_example.json"
NIL_UUID = "00000000-0000-0000-0000-000000000000"
BATTERY_MODEL = "BMS-sim-1"
VEHICLE_MODEL = "EV-sim-1"
SETUP_MESSAGES = 5  # per battery: two devices, the passport, on the market, installed
DEFAULT_START = datetime.date(2027, 3, 1)


@dataclass
class SimBattery:
    """One simulated battery: its keys, DIDs, passport and BMS."""

    index: int
    key: PrivateKey  # the BMS's device key
    did: str
    vehicle_key: PrivateKey
    vehicle_did: str
    passport: str
    id_dmc: str
    bms: SimulatedBms
    sequence: int = 0  # reports made so far


def derive_key(seed: int, label: str, index: int) -> PrivateKey:
    """A deterministic Ed25519 key for one simulated device."""
    return PrivateKey(1, sha256(f"cityledger/battery-sim/{seed}/{label}/{index}".encode()))


def make_fleet(count: int, seed: int, chemistry: str = "nmc") -> list[SimBattery]:
    """`count` batteries with their keys, passport ids and BMSs, all from `seed`."""
    out = []
    for index, bms in enumerate(fleet(count, seed, chemistry)):
        key, vehicle = derive_key(seed, "battery", index), derive_key(seed, "vehicle", index)
        passport = str(uuid.UUID(bytes=sha256(f"passport/{seed}/{index}".encode())[:16], version=4))
        out.append(SimBattery(index, key, compute_device_did(key.public_key), vehicle,
                              compute_device_did(vehicle.public_key), passport, f"SIM-{seed}-{index:06d}", bms))
    return out


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The BatteryPass document the simulated passports are made from."""
    return json.loads(path.read_text(encoding="utf-8"))


def passport_document(template: dict[str, Any], battery: SimBattery, start: datetime.date) -> dict[str, Any]:
    """The battery's own passport document: its identifiers, in service from `start`."""
    document = copy.deepcopy(template)
    document["metadata"]["passportIdentifier"] = battery.passport
    document["metadata"]["predecessor"] = NIL_UUID
    document["identification"]["idDmc"] = battery.id_dmc
    document["operation"]["intoServiceDate"] = start.isoformat()
    document["performance"]["dynamic"] = battery.bms.dynamic(_timestamp(start))
    return document


def tier_hashes(parts: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """The SHA-256 of each tier's part (offchain/passport split): what the chain records."""
    return {tier: bytes.fromhex(compute_tier_hash(part)) for tier, part in parts.items()}


def setup_messages(chain_id: str, maker_key: PrivateKey, maker_did: str, battery: SimBattery,
                   document: dict[str, Any], parts: dict[str, dict[str, Any]] | None = None) -> list:
    """The battery's devices, passport registration, placing on the market and installation, in order."""
    hashes = tier_hashes(parts if parts is not None else split(document))
    return [build_registration(chain_id, "battery", BATTERY_MODEL, battery.key, maker_did, maker_key),
            build_registration(chain_id, "vehicle", VEHICLE_MODEL, battery.vehicle_key, maker_did, maker_key),
            RegisterPassport(maker_did, battery.passport, battery.id_dmc, battery.did, hashes["public"],
                             hashes["legitimate"], hashes["authority"]),
            PlaceOnMarket(maker_did, battery.passport),
            Install(maker_did, battery.passport, battery.vehicle_did)]


def _timestamp(day: datetime.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def day_reports(chain_id: str, batteries: list[SimBattery], day: datetime.date) -> list[SignedReportBody]:
    """Advance every BMS one day; each battery's report {salt, dynamic}, signed by its BMS key."""
    out = []
    for battery in batteries:
        battery.bms.advance_day(day.isoformat())
        battery.sequence += 1
        # A fresh random salt: the report's hash (a Merkle leaf) cannot be tested against guessed values.
        report = {"salt": os.urandom(MIN_SALT_HEX // 2).hex(), "dynamic": battery.bms.dynamic(_timestamp(day))}
        out.append(report_item(chain_id, battery.key, battery.did, battery.passport, battery.sequence, report))
    return out


def chunks(items: list, size: int) -> list[list]:
    """`items` in lists of at most `size`."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def soh_summary(batteries: list[SimBattery]) -> dict[str, float]:
    """State of health (100 − capacity fade) and cycles over the fleet now."""
    soh = [100 - battery.bms.state()[0] for battery in batteries]
    cycles = [battery.bms.fec for battery in batteries]
    return {"soh_min_pct": round(min(soh), 2), "soh_mean_pct": round(sum(soh) / len(soh), 2),
            "soh_max_pct": round(max(soh), 2), "fec_mean": round(sum(cycles) / len(cycles), 1),
            "negative_events": sum(len(battery.bms.events) for battery in batteries)}


# -- against a node (cityledger battery simulate) ------------------------------------------------

SETUP_PER_TX = MAX_MESSAGES_PER_TX // SETUP_MESSAGES


class SimulationError(RuntimeError):
    """The node refused something the simulation sent."""


def _submit(client, chain_id: str, key: PrivateKey, nonce: int, batches: list[list]) -> tuple[int, bytes | None]:
    """Sign one tx per batch with consecutive nonces and submit them; (next nonce, the last tx's id)."""
    from ..sdk import sign, tx_id

    txs = [sign(chain_id, [key], nonce + i, messages) for i, messages in enumerate(batches)]
    if not txs:
        return nonce, None
    result = client.submit_batch(txs)
    refused = [r for r in result.results if not r.ok]
    if refused:
        raise SimulationError(f"tx: refused at check: {refused[0].codespace}/{refused[0].code} {refused[0].log}")
    return nonce + len(txs), tx_id(txs[-1])


def _wait(client, last: bytes | None) -> int:
    """Wait for the last submitted tx; raise unless it committed; its height."""
    if last is None:
        return client.status().height
    status = client.wait(last, timeout_s=120)
    if status.result is None or not status.result.ok:
        raise SimulationError(f"tx: {last.hex()} not committed ({status.status}): "
                              f"{status.result.log if status.result else ''}")
    return status.height


def setup_on_node(client, chain_id: str, key: PrivateKey, operator: str, batteries: list[SimBattery],
                  start: datetime.date, on_battery: Callable[[], None]) -> None:
    """Store each battery's passport in the service, then register it all on chain."""
    from ..sdk.passports import sign_put

    template = load_template()
    messages = []
    for battery in batteries:
        document = passport_document(template, battery, start)
        client.put_passport(battery.passport, sign_put(chain_id, [key], operator, 0, document))
        messages.append(setup_messages(chain_id, key, operator, battery, document))
        on_battery()
    batches = [sum(group, []) for group in chunks(messages, SETUP_PER_TX)]
    nonce = client.get_nonce(key.address())
    _, last = _submit(client, chain_id, key, nonce, batches)
    _wait(client, last)


def simulate_days(client, chain_id: str, batteries: list[SimBattery], start: datetime.date, days: int,
                  on_day: Callable[[int, list[SignedReportBody]], None], days_per_post: int = 1) -> dict[str, int]:
    """Every day each BMS's signed report; every `days_per_post` days the reports held, in batches of
    MAX_REPORT_BATCH, verified, stored and committed by the node (one root each)."""
    from ..sdk import ApiError
    from ..wire.batteries import ReportBatchBody

    batches, height, held = 0, 0, []
    for day in range(1, days + 1):
        reports = day_reports(chain_id, batteries, start + datetime.timedelta(days=day))
        held += reports
        if day % days_per_post == 0 or day == days:
            for group in chunks(held, MAX_REPORT_BATCH):
                try:
                    answer = client.post_reports(ReportBatchBody(reports=group))
                except ApiError as exc:
                    raise SimulationError(f"reports: day {day} refused: {exc}") from None
                batches, height = batches + 1, answer.height
            held = []
        on_day(day, reports)
    return {"reports": days * len(batteries), "txs": batches, "height": height}
