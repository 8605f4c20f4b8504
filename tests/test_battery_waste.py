"""The city's battery-waste picture through the real app: passports by stage, in second life, awaiting
recycling, and each recycler's recovery per calendar year against the one targets table; hostile
query arguments answered with the field, never raised."""

from __future__ import annotations

import pytest

from test_batteries import H, Batteries, passport_id
from test_identity_fixtures import City
from cityledger.modules.batteries import Collect, Repurpose, Remanufacture
from cityledger.modules.batteries.queries import MAX_QUERY_PASSPORTS
from cityledger.modules.batteries.recycling import compute_year


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Batteries(City(tmp_path_factory.mktemp("battery-waste")))


def ids(world, name: str, **args) -> list[str]:
    return world.ledger.query(f"/batteries/{name}", **args)["passports"]


def test_batteries_by_stage_follow_every_transition(world):
    pid, _ = world.register(0x21)
    assert pid in ids(world, "by_stage", stage="manufactured")
    in_service, _ = world.in_service(0x22)
    assert in_service in ids(world, "by_stage", stage="in_service")
    assert in_service not in ids(world, "by_stage", stage="placed_on_market")
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    assert pid not in ids(world, "by_stage", stage="manufactured")
    assert pid in ids(world, "awaiting_recycling") and pid in ids(world, "by_stage", stage="waste")
    world.recycle("W-0001", [pid]).raise_for_error()
    assert pid not in ids(world, "awaiting_recycling") and pid in ids(world, "by_stage", stage="recycled")
    answer = world.ledger.query("/batteries/by_stage", stage="in_service")
    assert answer["count"] == len(answer["passports"]) and answer["passports"] == sorted(answer["passports"])
    world.ledger.app.check_invariants()


def test_second_life_is_a_repurposed_batterys_open_successor(world):
    old, _ = world.in_service(0x23)
    new = passport_id(0xB3)
    world.send(world.second, Repurpose(world.second.did, old, new, "DMC-W23", H[5], H[6], H[7])).raise_for_error()
    assert new in ids(world, "second_life") and old not in ids(world, "second_life")
    reman_old, _ = world.in_service(0x24)
    reman_new = passport_id(0xB4)
    world.send(world.reman, Remanufacture(world.reman.did, reman_old, reman_new, "DMC-W24", H[5], H[6], H[7])
               ).raise_for_error()
    assert reman_new not in ids(world, "second_life")  # remanufactured: a first life again
    world.send(world.recycler, Collect(world.recycler.did, new)).raise_for_error()
    assert new not in ids(world, "second_life") and new in ids(world, "awaiting_recycling")
    world.ledger.app.check_invariants()


def test_lists_page_on_with_after(world):
    made = sorted(world.register(0x30 + i)[0] for i in range(3))
    every = ids(world, "by_stage", stage="manufactured")
    assert set(made) <= set(every) and len(every) <= MAX_QUERY_PASSPORTS
    page = ids(world, "by_stage", stage="manufactured", after=every[0])
    assert page == every[1:]


def test_recycler_per_year_against_the_targets(world):
    pid, _ = world.register(0x26)
    world.send(world.recycler, Collect(world.recycler.did, pid)).raise_for_error()
    world.recycle("W-0002", [pid]).raise_for_error()
    year = compute_year(world.ledger.time_ns)
    total = world.ledger.query("/batteries/recycler", did=world.recycler.did)
    yearly = world.ledger.query("/batteries/recycler", did=world.recycler.did, year=str(year))
    assert yearly["year"] == year and total["year"] is None
    assert yearly["batches"] == total["batches"] >= 2  # every batch of this test city fell in the same year
    lithium = yearly["material_recovery"]["li"]
    assert lithium["per_mille"] == lithium["recovered_g"] * 1000 // lithium["contained_g"]
    assert [(t["per_mille"], t["by"]) for t in lithium["targets"]] == [(500, 20271231), (800, 20311231)]
    assert all(t["reference"].startswith("Reg. (EU) 2023/1542 Annex XII") for t in lithium["targets"])
    with pytest.raises(LookupError):
        world.ledger.query("/batteries/recycler", did=world.recycler.did, year=str(year + 1))


@pytest.mark.parametrize("path,args,error", [
    ("by_stage", {}, ValueError), ("by_stage", {"stage": "Waste"}, ValueError),
    ("by_stage", {"stage": "x" * 5000}, ValueError), ("by_stage", {"stage": "waste", "after": "../.."}, ValueError),
    ("by_stage", {"stage": "waste", "after": "A" * 36}, ValueError), ("second_life", {"after": "\n"}, ValueError),
    ("awaiting_recycling", {"after": "0" * 1000}, ValueError), ("recycler", {"did": "x", "year": "-1"}, ValueError),
    ("recycler", {"did": "x", "year": "99999"}, ValueError), ("recycler", {"did": "x", "year": "2026\n"}, ValueError),
    ("recycler", {"did": "x", "year": "٢٠٢٦"}, ValueError), ("recycler", {"did": "did:city:nobody", "year": "2026"},
                                                              LookupError),
])
def test_invalid_waste_query_arguments_name_the_field(world, path, args, error):
    with pytest.raises(error) as caught:
        world.ledger.query(f"/batteries/{path}", **args)
    assert str(caught.value).split(":")[0] in {"stage", "after", "year", "did"}
