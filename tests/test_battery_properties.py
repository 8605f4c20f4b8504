"""Random battery-passport event sequences: the batteries invariants hold after every block, two apps
fed the same blocks agree, and a passport's history, reports and document versions only grow.

The start is the batteries vectors' pre-state (an organisation per role, a repurposed passport and
its successor, a recycled one, a battery without a passport, two vehicles) and two more open
passports. Hypothesis draws every batteries message from small pools of organisations, passports,
devices and numbers, so the draws mix rightful events, wrong roles, out-of-order stages and events on closed passports.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityledger.core.keys import PrivateKey
from cityledger.modules.batteries import (
    CLOSED_STAGES,
    STAGES,
    TIERS,
    Collect,
    Install,
    Materials,
    PlaceOnMarket,
    Recycle,
    RegisterPassport,
    Remanufacture,
    Repair,
    ReportHealth,
    Repurpose,
    UpdateDocument,
    compute_report_payload,
    get_passport,
    get_stage_count,
)
from cityledger.modules.devices import compute_device_did
from cityledger.modules.identity import compute_did
from cityledger.offchain.identity.devices import build_registration, sign_device_message

from module_vectors import AppReplay, Step, vectors_of
from module_vectors import build_block as shared_build_block
from module_vectors import open_copy as shared_open_copy

VECTORS = vectors_of("batteries")
KEYS = dict(VECTORS.keys) | {f"battery{n}": PrivateKey(1, bytes([0xC0 + n]) * 32) for n in (4, 5)}
ORGS = ["maker", "carmaker", "repairer", "second_life", "remanufacturer", "recycler"]
ORG_DID = {name: compute_did(KEYS[name].signer(), b"") for name in ORGS}
DEVICE = {name: compute_device_did(KEYS[name].public_key) for name in
          ("battery1", "battery2", "battery3", "battery4", "battery5", "vehicle1", "vehicle2")}
PASSPORTS = ["6f1c2b8e-9a54-4c1e-8d2f-0b7a3e5c9d11", "0c9e7f3a-2d41-4b6e-9f08-5a1d3c7e2b22",
             "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c33", "3c4d5e6f-7081-4293-a4b5-c6d7e8f90a44",
             "4d5e6f70-8192-43a4-b5c6-d7e8f90a1b55", "5e6f7081-92a3-44b5-86c7-d8e9f0a1b266"]
H = [bytes([i]) * 32 for i in range(1, 4)]

orgs = st.sampled_from(ORGS)
# Mostly the open passports (the repurposed battery's successor and new ones), sometimes closed ones.
passports = st.sampled_from(PASSPORTS[2:] * 3 + PASSPORTS[:2])


def by(role: str):
    """Mostly the organisation whose role the event is, sometimes any other."""
    return st.sampled_from([role] * 4 + ORGS)


dmcs = st.sampled_from(["DMC-0001", "DMC-0004", "DMC-0006", "DMC-0007"])
hashes = st.sampled_from(H)
masses = st.builds(Materials, *(st.sampled_from([0, 500, 2_000]) for _ in range(5)))


def _act(org: str, message_type, *fields) -> tuple[str, list]:
    return org, [message_type(ORG_DID[org], *fields)]


def _report(battery: str, passport: str, sequence: int, report_hash: bytes) -> tuple[str, list]:
    payload = compute_report_payload(VECTORS.chain_id, passport, sequence, report_hash)
    signature = sign_device_message(KEYS[battery], DEVICE[battery], payload)
    return "a0", [ReportHealth(passport, sequence, report_hash, signature)]


BATTERIES = ["battery1", "battery2", "battery3", "battery4", "battery5"]
VEHICLES = [DEVICE["vehicle1"], DEVICE["vehicle2"]]
ANY_DEVICE = [DEVICE["battery3"]] * 3 + list(DEVICE.values())  # mostly the battery without a passport


def _successor(r: tuple) -> tuple[str, list]:
    org, repurpose = r[0], r[5]
    if not repurpose and org == "second_life":
        org = "remanufacturer"
    return _act(org, Repurpose if repurpose else Remanufacture, r[1], r[2], r[3], r[4], r[4], r[4])


operations = st.one_of(
    st.tuples(by("maker"), passports, dmcs, st.sampled_from(ANY_DEVICE), hashes).map(
        lambda r: _act(r[0], RegisterPassport, r[1], r[2], r[3], r[4], r[4], r[4])),
    st.tuples(by("maker"), passports).map(lambda r: _act(r[0], PlaceOnMarket, r[1])),
    st.tuples(by("carmaker"), passports, st.sampled_from(VEHICLES)).map(lambda r: _act(r[0], Install, r[1], r[2])),
    st.tuples(st.sampled_from(BATTERIES), passports, st.integers(1, 3), hashes).map(lambda r: _report(*r)),
    st.tuples(by("repairer"), passports).map(lambda r: _act(r[0], Repair, r[1])),
    st.tuples(by("second_life"), passports, passports, dmcs, hashes, st.booleans()).map(_successor),
    st.tuples(by("recycler"), passports).map(lambda r: _act(r[0], Collect, r[1])),
    st.tuples(by("recycler"), st.sampled_from(["B-0001", "B-0002"]),
              st.lists(passports, min_size=1, max_size=2, unique=True), masses, masses).map(
        lambda r: _act(r[0], Recycle, r[1], sorted(r[2]), 100_000, 70_000, r[3], r[4])),
    st.tuples(st.sampled_from(["second_life", "maker"] * 2 + ORGS), passports, st.sampled_from(TIERS),
              st.integers(1, 3), hashes).map(lambda r: _act(r[0], UpdateDocument, r[1], r[2], r[3], r[4])),
)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The batteries vectors' pre-state, built once on a store that each example copies."""
    path = tmp_path_factory.mktemp("battery-template") / "ledger.sqlite"
    replay = AppReplay(VECTORS.chain_id, VECTORS.genesis, path)
    for step in VECTORS.history:
        assert replay.deliver(step).ok
    # Two more batteries with open passports: one placed on the market, one in service.
    for n, pid in ((4, PASSPORTS[3]), (5, PASSPORTS[4])):
        battery = f"battery{n}"
        for org, messages in (
                ("maker", [build_registration(VECTORS.chain_id, "battery", "Pack-1", KEYS[battery], ORG_DID["maker"],
                                              KEYS["maker"])]),
                _act("maker", RegisterPassport, pid, f"DMC-000{n}", DEVICE[battery], H[0], H[0], H[0]),
                _act("maker", PlaceOnMarket, pid)):
            assert replay.deliver(Step([KEYS[org]], KEYS[org].signer(), messages)).ok
    assert replay.deliver(Step([KEYS["carmaker"]], KEYS["carmaker"].signer(),
                               _act("carmaker", Install, PASSPORTS[4], DEVICE["vehicle2"])[1])).ok
    replay.store.close()
    return path


def open_copy(template: Path, folder: Path) -> AppReplay:
    """An app on a copy of the template store, continuing at its height."""
    return shared_open_copy(template, folder, VECTORS.chain_id)


def build_block(replay: AppReplay, ops: list) -> list[bytes]:
    """Signed txs for a block from this file's keys."""
    return shared_build_block(replay, ops, KEYS, VECTORS.chain_id)


def growing(replay: AppReplay) -> dict:
    """Per passport: history length, report count, versions per tier, closed, successor."""
    out = {}
    for pid in PASSPORTS:
        record = get_passport(replay.store, pid)
        if record is not None:
            out[pid] = (record.history_len, record.report_count,
                        tuple(len(getattr(record.documents, tier)) for tier in TIERS),
                        record.stage in CLOSED_STAGES, record.successor, record.stage)
    return out


def assert_grew(before: dict, after: dict) -> None:
    for pid, (history, reports, versions, closed, successor, stage) in before.items():
        history_now, reports_now, versions_now, closed_now, successor_now, stage_now = after[pid]
        assert history_now >= history and reports_now >= reports, pid
        assert all(now >= then for now, then in zip(versions_now, versions)), pid
        if closed:  # a closed passport never changes again
            assert after[pid] == before[pid], pid


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(ops=st.lists(operations, min_size=1, max_size=25), block_size=st.integers(1, 5))
def test_random_battery_events_keep_every_invariant(template, tmp_path_factory, ops, block_size):
    folder = tmp_path_factory.mktemp("battery-random")
    one, two = open_copy(template, folder / "one"), open_copy(template, folder / "two")
    before = growing(one)
    for start in range(0, len(ops), block_size):
        txs = build_block(one, ops[start:start + block_size])
        assert one.block(*txs).app_hash == two.block(*txs).app_hash
        one.app.check_invariants()
        after = growing(one)
        assert_grew(before, after)
        assert sum(get_stage_count(one.store, stage) for stage in STAGES) == len(after)
        before = after
    one.store.close()
    two.store.close()
