"""Privacy: a year of 200 simulated batteries reporting daily leaves no SoH value, no owner identifier and no
restricted-tier field on the ledger, in the state or in the blocks.

The fleet is tools/battery_sim.py's, driven by the code `cityledger battery simulate` runs
(setup_on_node, simulate_days) against a live in-process node: 200 battery and vehicle devices,
their passports (real BatteryPass documents stored in the node's passport service, their tier
hashes on chain), then 365 days of BMS-signed daily reports posted a week at a time to
POST /passports/reports, each batch verified, stored encrypted off chain and committed as one
Merkle root (anchor_report_root). The dump is scanned twice: every text the state and the blocks
hold (msgpack-decoded, so random hash bytes cannot pass for a number) against the exact values
produced, and the raw bytes against every produced string long enough not to occur by chance.
"""

from __future__ import annotations

import datetime
import re

import msgspec
import pytest

from passport_home import passport_home
from test_api_helpers import LiveServer
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.batteries import get_report_root
from cityledger.modules.identity import compute_did
from cityledger.node.runner import Node
from cityledger.offchain.passport import split
from cityledger.sdk import Client
from cityledger.tools.battery_sim import load_template, make_fleet, passport_document, setup_on_node, simulate_days

BATTERIES = 200
DAYS = 365
DAYS_PER_POST = 7  # a relay posting a week of daily reports at a time (1,400: one batch)
START = datetime.date(2027, 3, 1)
SOH_FIELDS = (("capacity", "fade"), ("capacity", "capacity"), ("energy", "soce"), ("energy", "remaining"),
              ("power", "fade"), ("roundTripEfficiency", "remaining"), ("resistance", "increase", "pack"), ("stateOfCharge",))
MIN_RAW_SCAN_CHARS = 8  # shorter strings could occur by chance in megabytes of hashes and signatures


def texts(value, out: set[str]) -> None:
    """Every string in a decoded msgpack value, and every number as JSON writes it."""
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, (int, float)):
        out.add(repr(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            texts(key, out)
            texts(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            texts(item, out)


def decoded_texts(raw: bytes, out: set[str]) -> None:
    """The texts of a stored value or a tx; a value that is not msgpack (a counter, an id) as UTF-8 if it is."""
    try:
        texts(msgspec.msgpack.decode(raw), out)
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            out.add(raw.decode())
        except UnicodeDecodeError:
            pass


def leaf_strings(value, out: set[str]) -> None:
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, dict):
        for item in value.values():
            leaf_strings(item, out)
    elif isinstance(value, list):
        for item in value:
            leaf_strings(item, out)


def value_at(document: dict, path: tuple[str, ...]):
    for step in path:
        document = document[step]
    return document["value"]


def _node(tmp_path) -> tuple[Node, PrivateKey]:
    """A solo node whose passport service commits report roots; its car maker makes batteries and vehicles."""
    config, maker = passport_home(tmp_path / "home")
    return Node(config), maker


@pytest.mark.slow  # a year of reports through the API: about 50 s on the 2-core machine
def test_a_year_of_200_batteries_puts_no_soh_owner_or_restricted_field_on_the_ledger(tmp_path):
    node, maker = _node(tmp_path)
    fleet = make_fleet(BATTERIES, seed=2027)
    # Owners: who drives each car, as the vehicle maker's sales records would know them (off chain).
    owners = {b.passport: (f"Owner-{b.index:04d} Example", f"ID-{b.index:08d}-Z",
                           address_to_str(PrivateKey(1, bytes([1 + b.index % 250]) * 32).address()))
              for b in fleet}
    restricted: set[str] = set()
    template = load_template()
    for battery in fleet:
        parts = split(passport_document(template, battery, START))
        for tier in ("legitimate", "authority"):
            leaf_strings(parts[tier], restricted)
    values: set[str] = set()  # the SoH (100 − capacity fade) and the values it shows in, as JSON writes them
    salts: set[str] = set()

    def seen(day: int, reports) -> None:
        for item in reports:
            dynamic = item.report["dynamic"]
            values.update(repr(value_at(dynamic, path)) for path in SOH_FIELDS)
            values.add(repr(round(100 - dynamic["capacity"]["fade"]["value"], 2)))  # the SoH itself
            salts.add(item.report["salt"])

    with LiveServer(node) as server, Client(server.url) as client:
        chain_id = node.app.chain_id
        setup_on_node(client, chain_id, maker, compute_did(maker.signer(), b""), fleet, START, lambda: None)
        counts = simulate_days(client, chain_id, fleet, START, DAYS, seen, days_per_post=DAYS_PER_POST)
        posts = -(-DAYS // DAYS_PER_POST)
        assert counts == {"reports": BATTERIES * DAYS, "txs": posts, "height": counts["height"]}
        last = get_report_root(node.store, node.passport_service, posts)
        assert last is not None and get_report_root(node.store, node.passport_service, posts + 1) is None

        # The dump: the whole state and every block.
        state = list(node.store.iter_prefix(b""))
        blocks = [tx for height in range(1, node.store.last_height() + 1) for tx in node.store.get_block(height).txs]
    on_ledger: set[str] = set()
    for key, raw in state:
        decoded_texts(raw, on_ledger)
    for tx in blocks:
        decoded_texts(tx, on_ledger)
    raw_dump = b"\x00".join(k + b"\x00" + v for k, v in state) + b"\x00".join(blocks)

    # No number of any report, no SoH, as a value or a text anywhere in the state or the blocks.
    decimals = {v for v in values if "." in v}
    assert len(decimals) > 500  # the scan looks for something: hundreds of distinct values
    found = decimals & on_ledger
    assert not found, sorted(found)[:10]
    # Nor inside a longer text (a tag such as "batteries/1.0/report" holds "1.0": the shortest values are left out).
    distinctive = {v for v in decimals if len(v) >= 4}
    inside = {(t, n) for t in on_ledger for n in re.findall(r"\d+\.\d+", t) if n in distinctive}
    assert not inside, sorted(inside)[:10]
    # No owner identifier, no restricted-tier field, no report salt, in the decoded texts or the raw bytes.
    identifiers = {value for owner in owners.values() for value in owner}
    long_strings = {s for s in identifiers | restricted | salts if len(s) >= MIN_RAW_SCAN_CHARS}
    assert restricted and len(salts) == BATTERIES * DAYS and len(long_strings) > 2 * BATTERIES
    assert not (identifiers | restricted | salts) & on_ledger
    # Raw: every printable run of the dump, searched for each long string; salts (32 hex digits) as every
    # 32-digit window of the dump's hex runs, so 73,000 of them cost one pass.
    printable = "\n".join(run.decode() for run in re.findall(rb"[\x20-\x7e]{%d,}" % MIN_RAW_SCAN_CHARS, raw_dump))
    leaked = [s for s in long_strings - salts if s in printable]
    assert not leaked, leaked[:5]
    windows = {run[i:i + 32] for run in re.findall(r"[0-9a-f]{32,}", printable) for i in range(len(run) - 31)}
    assert not windows & salts
