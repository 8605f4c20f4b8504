"""batteries module: the battery passport life cycle of EU Regulation 2023/1542 through the real app,
every transition and every refusal (each refusal a clear error and no state change), the invariants,
the queries and what the ledger does not hold."""

from __future__ import annotations

import json
import uuid

import msgspec
import pytest

from helpers import assert_error_kind
from test_identity_fixtures import City
from cityledger.core.errors import InvariantBroken
from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.statekeys import PREFIX_BATTERIES
from cityledger.modules.batteries import (
    ROLE_MANUFACTURER,
    ROLE_RECYCLER,
    ROLE_REMANUFACTURER,
    ROLE_REPAIRER,
    ROLE_SECOND_LIFE,
    ROLE_VEHICLE_MAKER,
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
)
from cityledger.modules.batteries import errors as E
from cityledger.modules.batteries.invariants import check_passports
from cityledger.modules.batteries.keys import passport_key
from cityledger.modules.batteries.handlers import decode_passport
from cityledger.modules.devices import compute_device_did
from cityledger.modules.devices.keeper import DevicesKeeper
from cityledger.modules.identity.keeper import KEEPER as IDENTITY
from cityledger.offchain.identity import DEVICE_MANUFACTURER
from cityledger.offchain.identity.devices import build_registration, sign_device_message

H = [bytes([i]) * 32 for i in range(8)]  # stand-ins for off-chain documents' SHA-256 hashes


def passport_id(seed: int) -> str:
    """A deterministic UUIDv4 for a test passport."""
    return str(uuid.UUID(bytes=sha256(b"passport" + bytes([seed]))[:16], version=4))


class Batteries:
    """A city with one accredited organisation per role, and helpers for a battery's life."""

    def __init__(self, city: City) -> None:
        self.city, self.ledger = city, city.ledger
        self.maker = self._org("maker", 0x81, DEVICE_MANUFACTURER, ROLE_MANUFACTURER)
        self.carmaker = self._org("carmaker", 0x82, DEVICE_MANUFACTURER, ROLE_VEHICLE_MAKER)
        self.repairer = self._org("repairer", 0x83, ROLE_REPAIRER)
        self.second = self._org("second-life", 0x84, ROLE_SECOND_LIFE)
        self.reman = self._org("reman", 0x85, ROLE_REMANUFACTURER)
        self.recycler = self._org("recycler", 0x86, ROLE_RECYCLER)
        self.other_maker = self._org("other-maker", 0x87, DEVICE_MANUFACTURER, ROLE_MANUFACTURER)
        self.keys: dict[str, PrivateKey] = {}

    def _org(self, name: str, seed: int, *roles: str):
        office = self.city.office(name, seed)
        for role in roles:
            assert self.city.accredit(office.did, role) == "executed"
        return office

    def device(self, seed: int, kind: str, maker) -> str:
        key = PrivateKey(2, bytes([seed]) * 32)
        message = build_registration(self.city.chain_id, kind, "Cell-1", key, maker.did, maker.keys[0])
        self.ledger.send(maker.keys, [message]).raise_for_error()
        did = compute_device_did(key.public_key)
        self.keys[did] = key
        return did

    def send(self, org, message):
        return self.ledger.send(org.keys, [message])

    def register(self, seed: int, maker=None) -> tuple[str, str]:
        """A new battery device and its passport at stage manufactured: (passport id, battery DID)."""
        maker = maker or self.maker
        battery = self.device(seed, "battery", maker)
        pid = passport_id(seed)
        message = RegisterPassport(maker.did, pid, f"DMC-{seed:03d}", battery, H[0], H[1], H[2])
        self.send(maker, message).raise_for_error()
        return pid, battery

    def in_service(self, seed: int) -> tuple[str, str]:
        pid, battery = self.register(seed)
        self.send(self.maker, PlaceOnMarket(self.maker.did, pid)).raise_for_error()
        vehicle = self.device(seed + 100, "vehicle", self.carmaker)
        self.send(self.carmaker, Install(self.carmaker.did, pid, vehicle)).raise_for_error()
        return pid, battery

    def report(self, pid: str, battery: str, sequence: int, report_hash: bytes, signer: str | None = None):
        """A report commitment signed by `signer`'s device key (default: the passport's battery)."""
        signer = signer or battery
        payload = compute_report_payload(self.city.chain_id, pid, sequence, report_hash)
        signature = sign_device_message(self.keys[signer], signer, payload)
        return self.ledger.send([self.city.chain.accounts[0]], [ReportHealth(pid, sequence, report_hash, signature)])

    def recycle(self, batch: str, passports: list[str], **changes):
        values = dict(input_mass_g=400_000, output_mass_g=290_000, contained=Materials(9_000, 20_000, 6_000, 30_000, 0),
                      recovered=Materials(8_600, 19_500, 3_300, 28_800, 0))
        values.update(changes)
        return self.send(self.recycler, Recycle(self.recycler.did, batch, sorted(passports), **values))

    def passport(self, pid: str) -> dict:
        return self.ledger.query("/batteries/passport", id=pid)

    def dump(self) -> list[tuple[bytes, bytes]]:
        """Every key and value of the batteries module's state."""
        return list(self.ledger.store.iter_prefix(bytes([PREFIX_BATTERIES])))

    def refused(self, outcome, kind) -> None:
        """Assert a refusal of this kind; the caller checks the dump did not move."""
        assert_error_kind(outcome, kind)
        assert ": " in outcome.log, f"expected the error to name its field: {outcome.log}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Batteries(City(tmp_path_factory.mktemp("batteries")))


def unchanged(world: Batteries, before: list) -> None:
    assert world.dump() == before


# -- every transition ----------------------------------------------------------------------------

def test_first_life_from_manufacture_to_recycling(world):
    pid, battery = world.register(0x01)
    view = world.passport(pid)
    assert (view["stage"], view["operator"], view["battery"], view["id_dmc"]) == \
           ("manufactured", world.maker.did, battery, "DMC-001")
    assert view["documents"]["public"] == [{"hash": H[0].hex(), "height": view["created_height"]}]
    world.send(world.maker, PlaceOnMarket(world.maker.did, pid)).raise_for_error()
    vehicle = world.device(0x41, "vehicle", world.carmaker)
    world.send(world.carmaker, Install(world.carmaker.did, pid, vehicle)).raise_for_error()
    world.report(pid, battery, 1, H[3]).raise_for_error()
    world.send(world.repairer, Repair(world.repairer.did, pid)).raise_for_error()
    world.report(pid, battery, 2, H[4]).raise_for_error()
    world.send(world.repairer, Repair(world.repairer.did, pid)).raise_for_error()  # repairs may repeat
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    world.recycle("B-0001", [pid]).raise_for_error()
    view = world.passport(pid)
    assert [(e["event"], e["stage"]) for e in view["history"]] == [
        ("registered", "manufactured"), ("placed_on_market", "placed_on_market"), ("installed", "in_service"),
        ("repaired", "repaired"), ("repaired", "repaired"), ("collected", "waste"), ("recycled", "recycled")]
    assert [e["actor"] for e in view["history"]][2:4] == [world.carmaker.did, world.repairer.did]
    assert (view["stage"], view["vehicle"], view["report_count"], view["recycling_batch"]) == \
           ("recycled", vehicle, 2, "B-0001")
    reports = world.ledger.query("/batteries/reports", id=pid)["reports"]
    assert [(r["sequence"], r["report_hash"]) for r in reports] == [(1, H[3].hex()), (2, H[4].hex())]
    world.ledger.app.check_invariants()


def test_repurpose_closes_the_old_passport_and_opens_its_successor(world):
    pid, battery = world.in_service(0x02)
    world.report(pid, battery, 1, H[3]).raise_for_error()
    new = passport_id(0xA2)
    outcome = world.send(world.second, Repurpose(world.second.did, pid, new, "DMC-002", H[5], H[6], H[7]))
    outcome.raise_for_error()
    old, successor = world.passport(pid), world.passport(new)
    assert (old["stage"], old["successor"]) == ("repurposed", new)
    assert (successor["predecessor"], successor["stage"], successor["operator"], successor["battery"]) == \
           (pid, "placed_on_market", world.second.did, battery)
    assert [e["event"] for e in successor["history"]] == ["succeeded"]
    assert world.ledger.query("/batteries/passport", id_dmc="DMC-002")["passport"] == new
    # The same BMS reports on the new passport once it is in service again, from sequence 1.
    world.send(world.carmaker, Install(world.carmaker.did, new, world.device(0x42, "vehicle", world.carmaker))
               ).raise_for_error()
    world.report(new, battery, 1, H[4]).raise_for_error()
    world.ledger.app.check_invariants()


def test_remanufacture_closes_the_old_passport_with_a_new_id_dmc(world):
    pid, battery = world.in_service(0x03)
    world.send(world.repairer, Repair(world.repairer.did, pid)).raise_for_error()
    new = passport_id(0xA3)
    world.send(world.reman, Remanufacture(world.reman.did, pid, new, "DMC-003-R", H[5], H[6], H[7])).raise_for_error()
    assert world.passport(pid)["successor"] == new and world.passport(pid)["stage"] == "remanufactured"
    assert world.ledger.query("/batteries/passport", id_dmc="DMC-003")["successor"] == new
    assert world.ledger.query("/batteries/passport", id_dmc="DMC-003-R")["predecessor"] == pid
    world.ledger.app.check_invariants()


def test_unsold_battery_is_collected_and_document_versions_grow(world):
    pid, _ = world.register(0x04)
    for version, value in ((2, H[3]), (3, H[4])):
        world.send(world.maker, UpdateDocument(world.maker.did, pid, "legitimate", version, value)).raise_for_error()
    world.send(world.maker, UpdateDocument(world.maker.did, pid, "authority", 2, H[5])).raise_for_error()
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    documents = world.passport(pid)["documents"]
    assert [v["hash"] for v in documents["legitimate"]] == [H[1].hex(), H[3].hex(), H[4].hex()]
    assert [v["hash"] for v in documents["authority"]] == [H[2].hex(), H[5].hex()]
    assert world.passport(pid)["stage"] == "waste"


# -- every refusal: a clear error and no state change --------------------------------------------

def test_invalid_transition_by_a_wrong_role(world):
    pid, battery = world.register(0x05)
    vehicle = world.device(0x45, "vehicle", world.carmaker)
    before = world.dump()
    world.refused(world.send(world.carmaker, PlaceOnMarket(world.carmaker.did, pid)), E.ERR_WRONG_ROLE)
    # Another accredited manufacturer is not this passport's responsible operator.
    world.refused(world.send(world.other_maker, PlaceOnMarket(world.other_maker.did, pid)), E.ERR_WRONG_ROLE)
    # A key that does not control the operator DID cannot act for it.
    outcome = world.ledger.send(world.repairer.keys, [PlaceOnMarket(world.maker.did, pid)])
    world.refused(outcome, E.ERR_WRONG_ROLE)
    unchanged(world, before)
    world.send(world.maker, PlaceOnMarket(world.maker.did, pid)).raise_for_error()
    before = world.dump()
    world.refused(world.send(world.maker, Install(world.maker.did, pid, vehicle)), E.ERR_WRONG_ROLE)
    world.refused(world.send(world.recycler, Recycle(world.recycler.did, "B-x", [pid], 1, 0, Materials(0, 0, 0, 0, 0),
                                                     Materials(0, 0, 0, 0, 0))), E.ERR_WRONG_STAGE)
    unchanged(world, before)
    world.send(world.carmaker, Install(world.carmaker.did, pid, vehicle)).raise_for_error()
    before = world.dump()
    new = passport_id(0xA5)
    for org, message in (
            (world.recycler, Repair(world.recycler.did, pid)),
            (world.repairer, Repurpose(world.repairer.did, pid, new, "DMC-A5", H[5], H[6], H[7])),
            (world.second, Remanufacture(world.second.did, pid, new, "DMC-A5", H[5], H[6], H[7])),
            (world.repairer, Collect(world.repairer.did, pid)),
            (world.carmaker, UpdateDocument(world.carmaker.did, pid, "public", 2, H[3]))):
        world.refused(world.send(org, message), E.ERR_WRONG_ROLE)
    nothing = Materials(0, 0, 0, 0, 0)
    world.refused(world.send(world.repairer, Recycle(world.repairer.did, "B-5", [pid], 1, 0, nothing, nothing)),
                  E.ERR_WRONG_ROLE)
    battery2 = world.device(0x06, "battery", world.maker)
    world.refused(world.send(world.carmaker, RegisterPassport(world.carmaker.did, passport_id(0x06), "DMC-006",
                                                              battery2, H[0], H[1], H[2])), E.ERR_WRONG_ROLE)
    unchanged(world, before)


def test_invalid_event_after_recycling(world):
    pid, battery = world.in_service(0x07)
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    world.recycle("B-0007", [pid]).raise_for_error()
    before = world.dump()
    for org, message in (
            (world.maker, PlaceOnMarket(world.maker.did, pid)),
            (world.carmaker, Install(world.carmaker.did, pid, world.passport(pid)["vehicle"])),
            (world.repairer, Repair(world.repairer.did, pid)),
            (world.second, Repurpose(world.second.did, pid, passport_id(0xA7), "DMC-A7", H[5], H[6], H[7])),
            (world.recycler, Collect(world.recycler.did, pid)),
            (world.maker, UpdateDocument(world.maker.did, pid, "public", 2, H[3]))):
        world.refused(world.send(org, message), E.ERR_CLOSED)
    world.refused(world.recycle("B-0007b", [pid]), E.ERR_CLOSED)
    world.refused(world.report(pid, battery, 1, H[3]), E.ERR_CLOSED)
    unchanged(world, before)


def test_invalid_report_signed_by_another_battery_or_out_of_sequence(world):
    pid, battery = world.register(0x08)
    before = world.dump()
    world.refused(world.report(pid, battery, 1, H[3]), E.ERR_WRONG_STAGE)  # not in service yet
    unchanged(world, before)
    world.send(world.maker, PlaceOnMarket(world.maker.did, pid)).raise_for_error()
    world.send(world.carmaker, Install(world.carmaker.did, pid, world.device(0x48, "vehicle", world.carmaker))
               ).raise_for_error()
    other = world.device(0x09, "battery", world.maker)
    before = world.dump()
    world.refused(world.report(pid, battery, 1, H[3], signer=other), E.ERR_BAD_REPORT)
    world.refused(world.report(pid, battery, 2, H[3]), E.ERR_BAD_REPORT)
    world.refused(world.report(pid, battery, 0, H[3]), E.ERR_BAD_REPORT)
    world.refused(world.report(pid, battery, 1, H[3][:31]), E.ERR_INVALID_PASSPORT)
    unchanged(world, before)
    first = world.report(pid, battery, 1, H[3]).raise_for_error()
    before = world.dump()
    # The same signed report again (a replay) is refused: it commits to sequence 1.
    payload = compute_report_payload(world.city.chain_id, pid, 1, H[3])
    signature = sign_device_message(world.keys[battery], battery, payload)
    replay = world.ledger.send([world.city.chain.accounts[1]], [ReportHealth(pid, 2, H[3], signature)])
    world.refused(replay, E.ERR_BAD_REPORT)
    unchanged(world, before)
    assert first.events and world.passport(pid)["report_count"] == 1


def test_invalid_repurpose_that_does_not_close_the_old_passport(world):
    pid, battery = world.in_service(0x0A)
    before = world.dump()
    # A second passport for the same battery by registration would leave the first one open.
    world.refused(world.send(world.maker, RegisterPassport(world.maker.did, passport_id(0xAA), "DMC-0AA", battery,
                                                           H[0], H[1], H[2])), E.ERR_PASSPORT_EXISTS)
    # A successor must be a new passport and must not take another battery's idDmc.
    taken = passport_id(0x01)
    world.refused(world.send(world.second, Repurpose(world.second.did, pid, taken, "DMC-00A", H[5], H[6], H[7])),
                  E.ERR_PASSPORT_EXISTS)
    world.refused(world.send(world.second, Repurpose(world.second.did, pid, passport_id(0xAA), "DMC-001", H[5], H[6],
                                                     H[7])), E.ERR_PASSPORT_EXISTS)
    unchanged(world, before)
    world.send(world.second, Repurpose(world.second.did, pid, passport_id(0xAA), "DMC-00A", H[5], H[6], H[7])
               ).raise_for_error()
    before = world.dump()
    # The closed passport cannot be repurposed (or remanufactured) again into a second successor.
    world.refused(world.send(world.second, Repurpose(world.second.did, pid, passport_id(0xAB), "DMC-0AB", H[5], H[6],
                                                     H[7])), E.ERR_CLOSED)
    world.refused(world.send(world.reman, Remanufacture(world.reman.did, pid, passport_id(0xAB), "DMC-0AB", H[5],
                                                        H[6], H[7])), E.ERR_CLOSED)
    unchanged(world, before)


def test_invalid_out_of_order_stage(world):
    pid, battery = world.register(0x0B)
    vehicle = world.device(0x4B, "vehicle", world.carmaker)
    before = world.dump()
    for org, message in (
            (world.carmaker, Install(world.carmaker.did, pid, vehicle)),
            (world.repairer, Repair(world.repairer.did, pid)),
            (world.second, Repurpose(world.second.did, pid, passport_id(0xAC), "DMC-0AC", H[5], H[6], H[7])),
            (world.reman, Remanufacture(world.reman.did, pid, passport_id(0xAC), "DMC-0AC", H[5], H[6], H[7]))):
        world.refused(world.send(org, message), E.ERR_WRONG_STAGE)
    world.refused(world.recycle("B-000B", [pid]), E.ERR_WRONG_STAGE)
    unchanged(world, before)
    world.send(world.maker, PlaceOnMarket(world.maker.did, pid)).raise_for_error()
    before = world.dump()
    world.refused(world.send(world.maker, PlaceOnMarket(world.maker.did, pid)), E.ERR_WRONG_STAGE)
    unchanged(world, before)
    world.send(world.carmaker, Install(world.carmaker.did, pid, vehicle)).raise_for_error()
    before = world.dump()
    world.refused(world.send(world.carmaker, Install(world.carmaker.did, pid, vehicle)), E.ERR_WRONG_STAGE)
    unchanged(world, before)


def test_invalid_fields_devices_and_recycling_records(world):
    battery = world.device(0x0C, "battery", world.maker)
    vehicle = world.device(0x4C, "vehicle", world.carmaker)
    foreign = world.device(0x0D, "battery", world.other_maker)
    good = RegisterPassport(world.maker.did, passport_id(0x0C), "DMC-00C", battery, H[0], H[1], H[2])
    before = world.dump()
    for changes, kind in (
            ({"passport": passport_id(0x0C).upper()}, E.ERR_INVALID_PASSPORT),
            ({"passport": str(uuid.uuid1(node=1, clock_seq=1))}, E.ERR_INVALID_PASSPORT),
            ({"passport": passport_id(0x0C) + "\n"}, E.ERR_INVALID_PASSPORT),
            ({"id_dmc": "DMC 00C"}, E.ERR_INVALID_PASSPORT),
            ({"id_dmc": "D" * 65}, E.ERR_INVALID_PASSPORT),
            ({"id_dmc": "DMC-001"}, E.ERR_PASSPORT_EXISTS),
            ({"public_hash": H[0][:31]}, E.ERR_INVALID_PASSPORT),
            ({"operator": "did:city:nobody\n"}, E.ERR_INVALID_PASSPORT),
            ({"battery": vehicle}, E.ERR_UNKNOWN_DEVICE),
            ({"battery": foreign}, E.ERR_UNKNOWN_DEVICE)):
        world.refused(world.send(world.maker, msgspec.structs.replace(good, **changes)), kind)
    unchanged(world, before)
    pid, _ = world.in_service(0x0E)
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    before = world.dump()
    bad = Materials(9_000, 20_000, 6_000, 30_000, 0)
    for changes in ({"recovered": msgspec.structs.replace(bad, li=6_001)}, {"output_mass_g": 400_001},
                    {"input_mass_g": 0}, {"contained": Materials(10**12, 0, 0, 0, 0)}, {"output_mass_g": -1}):
        world.refused(world.recycle("B-000E", [pid], **changes), E.ERR_INVALID_RECYCLING)
    world.refused(world.recycle("B 000E", [pid]), E.ERR_INVALID_RECYCLING)
    world.refused(world.recycle("B-0001", [pid]), E.ERR_BATCH_EXISTS)
    world.refused(world.send(world.recycler, Recycle(world.recycler.did, "B-000E", [pid, pid], 1, 0, bad, bad)),
                  E.ERR_INVALID_RECYCLING)
    world.refused(world.send(world.recycler, Recycle(world.recycler.did, "B-000E", [], 1, 0, bad, bad)),
                  E.ERR_INVALID_RECYCLING)
    world.refused(world.send(world.maker, UpdateDocument(world.maker.did, pid, "public", 3, H[3])),
                  E.ERR_DOCUMENT_VERSION)
    world.refused(world.send(world.maker, UpdateDocument(world.maker.did, pid, "secret", 2, H[3])),
                  E.ERR_INVALID_PASSPORT)
    unchanged(world, before)


def test_invalid_event_once_the_role_is_withdrawn(world):
    pid, _ = world.in_service(0x0F)
    assert world.city.withdraw(world.repairer.did, ROLE_REPAIRER) == "executed"
    try:
        before = world.dump()
        world.refused(world.send(world.repairer, Repair(world.repairer.did, pid)), E.ERR_WRONG_ROLE)
        unchanged(world, before)
    finally:
        assert world.city.accredit(world.repairer.did, ROLE_REPAIRER) == "executed"
    world.send(world.repairer, Repair(world.repairer.did, pid)).raise_for_error()


# -- invariants ------------------------------------------------------------------------------------

class EditedState:
    """The committed state with some values replaced: to show the invariants catch a broken one."""

    def __init__(self, store, edits: dict[bytes, bytes]) -> None:
        self.store, self.edits = store, edits

    def get(self, key: bytes) -> bytes | None:
        return self.edits.get(key, self.store.get(key))

    def iter_prefix(self, prefix: bytes):
        items = dict(self.store.iter_prefix(prefix))
        items.update((k, v) for k, v in self.edits.items() if k.startswith(prefix))
        return iter(sorted(items.items()))


@pytest.mark.parametrize("edit", ["closed_without_successor", "stage_unknown", "history_shrunk", "stage_skipped"])
def test_invariants_catch_a_broken_passport(world, edit):
    pid = passport_id(0x30)  # a repurposed passport, made by the first of these cases
    if world.ledger.store.get(passport_key(pid)) is None:
        assert world.in_service(0x30)[0] == pid
        message = Repurpose(world.second.did, pid, passport_id(0xB0), "DMC-0B0", H[5], H[6], H[7])
        world.send(world.second, message).raise_for_error()
    devices = DevicesKeeper(IDENTITY)
    check_passports(devices, world.ledger.store)
    record = decode_passport(world.ledger.store.get(passport_key(pid)))
    changed = {"closed_without_successor": {"successor": ""}, "stage_unknown": {"stage": "lost"},
               "history_shrunk": {"history_len": record.history_len - 1},
               "stage_skipped": {"stage": "waste"}}[edit]
    edited = EditedState(world.ledger.store, {passport_key(pid): msgspec.msgpack.encode(
        msgspec.structs.replace(record, **changed))})
    with pytest.raises(InvariantBroken):
        check_passports(devices, edited)


# -- queries ---------------------------------------------------------------------------------------

def test_queries_by_stage_recycler_and_targets(world):
    pid1, _ = world.in_service(0x10)
    pid2, _ = world.in_service(0x11)
    stages_before = world.ledger.query("/batteries/stages")["stages"]
    for pid in (pid1, pid2):
        world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    world.recycle("B-0010", [pid1, pid2]).raise_for_error()
    stages = world.ledger.query("/batteries/stages")["stages"]
    assert stages["recycled"] == stages_before["recycled"] + 2
    assert stages["in_service"] == stages_before["in_service"] - 2
    assert sum(stages.values()) == len([k for k, _ in world.dump() if k[1] == 0x01])
    view = world.ledger.query("/batteries/recycler", did=world.recycler.did)
    batches = view["batches"]
    assert view["batteries"] >= 2 and batches >= 2
    li = view["material_recovery"]["li"]
    assert li["per_mille"] == li["recovered_g"] * 1000 // li["contained_g"] == 550  # 3,300 g of 6,000 g each batch
    assert [t["met"] for t in li["targets"]] == [True, False]  # 50 % by end-2027 met, 80 % by end-2031 not
    assert view["material_recovery"]["pb"]["per_mille"] is None  # no lead went in
    assert view["recycling_efficiency"]["per_mille"] == 725
    targets = world.ledger.query("/batteries/targets")["targets"]
    assert all(t["reference"].startswith("Reg. (EU) 2023/1542") and 0 < t["per_mille"] <= 1000 for t in targets)
    with pytest.raises(Exception):
        world.ledger.query("/batteries/passport", id="not-a-uuid")


# -- privacy ---------------------------------------------------------------------------------------

def test_privacy_dump_holds_no_soh_value_and_no_owner_identifier(world):
    """Simulated batteries report salted SoH documents; the ledger keeps only their hashes."""
    clear: list[bytes] = []
    for seed in range(0x20, 0x24):
        pid, battery = world.in_service(seed)
        for day in range(1, 4):
            document = {"passport": pid, "stateOfHealth": 97.25 - seed / 10 - day / 100, "cycles": 100 + 7 * seed + day,
                        "owner": "Alice Example", "vehicleOwnerAccount": "city1alicealicealice",
                        "salt": f"s{seed}{day}"}
            raw = json.dumps(document, sort_keys=True).encode()
            clear += [str(document["stateOfHealth"]).encode(), b"Alice Example", b"city1alicealicealice", raw]
            world.report(pid, battery, day, sha256(raw)).raise_for_error()
    state = b"".join(k + v for k, v in world.dump())
    blocks = b"".join(b"".join(world.ledger.store.get_block(h).txs)
                      for h in range(1, world.ledger.store.last_height() + 1))
    for value in clear:
        assert value not in state and value not in blocks, value
    # Structurally: every text a stored passport holds is an identifier, a DID or a stage name.
    for key, raw in world.dump():
        if key[1] == 0x01:
            record = decode_passport(raw)
            texts = [record.passport, record.id_dmc, record.battery, record.operator, record.stage, record.vehicle,
                     record.predecessor, record.successor, record.recycling_batch]
            assert all(t == "" or t.startswith("did:city:") or t in STAGE_NAMES or t == record.id_dmc
                       or t == record.recycling_batch or len(t) == 36 for t in texts), texts


STAGE_NAMES = {"manufactured", "placed_on_market", "in_service", "repaired", "repurposed", "remanufactured", "waste",
               "recycled"}
