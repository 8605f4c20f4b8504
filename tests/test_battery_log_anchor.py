"""batteries module: anchoring the passport access log's head (batteries/1.0/anchor_access_log) through
the real app: the operator's anchors chain, every refusal names its field and changes nothing, and
the invariant catches a broken chain."""

from __future__ import annotations

import msgspec
import pytest

from test_batteries import H, Batteries, EditedState, unchanged
from test_identity_fixtures import City
from cityledger.core.errors import InvariantBroken
from cityledger.modules.batteries import ZERO_HEAD, AnchorAccessLog
from cityledger.modules.batteries import errors as E
from cityledger.modules.batteries.invariants import check_passports
from cityledger.modules.batteries.keys import log_anchor_key
from cityledger.modules.batteries.messages import LogAnchor
from cityledger.modules.devices.keeper import DevicesKeeper
from cityledger.modules.identity.keeper import KEEPER as IDENTITY


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Batteries(City(tmp_path_factory.mktemp("battery-log")))


def anchor(world, org, pid, head, count, previous):
    return world.send(org, AnchorAccessLog(org.did, pid, head, count, previous))


def test_operator_anchors_a_chain_of_heads(world):
    pid, _ = world.register(0x01)
    assert world.ledger.query("/batteries/access_log", id=pid)["anchor_count"] == 0
    anchor(world, world.maker, pid, H[3], 2, ZERO_HEAD).raise_for_error()
    anchor(world, world.maker, pid, H[4], 5, H[3]).raise_for_error()
    view = world.ledger.query("/batteries/access_log", id=pid)
    assert (view["anchor_count"], view["head"], view["count"]) == (2, H[4].hex(), 5)
    assert [(a["index"], a["previous"], a["count"]) for a in view["anchors"]] == \
        [(1, ZERO_HEAD.hex(), 2), (2, H[3].hex(), 5)]
    assert world.ledger.query("/batteries/access_log", id=pid, **{"from": "2"})["anchors"][0]["head"] == H[4].hex()
    check_passports(DevicesKeeper(IDENTITY), world.ledger.store)


@pytest.fixture(scope="module")
def targets(world):
    """(a passport anchored once at H[5] with count 3, a passport never anchored)."""
    pid, _ = world.register(0x02)
    anchor(world, world.maker, pid, H[5], 3, ZERO_HEAD).raise_for_error()
    return pid, world.register(0x03)[0]


@pytest.mark.parametrize("case", ["stranger", "other_operator", "skipped_head", "first_not_zero",
                                  "count_same", "count_smaller", "count_zero", "head_short", "previous_long",
                                  "unknown_passport"])
def test_invalid_anchor(world, targets, case):
    pid, fresh = targets
    org, target, head, count, previous, kind = {
        "stranger": (world.recycler, pid, H[6], 4, H[5], E.ERR_WRONG_ROLE),
        "other_operator": (world.other_maker, pid, H[6], 4, H[5], E.ERR_WRONG_ROLE),
        "skipped_head": (world.maker, pid, H[6], 4, H[7], E.ERR_LOG_ANCHOR),
        "first_not_zero": (world.maker, fresh, H[6], 4, H[5], E.ERR_LOG_ANCHOR),
        "count_same": (world.maker, pid, H[6], 3, H[5], E.ERR_LOG_ANCHOR),
        "count_smaller": (world.maker, pid, H[6], 2, H[5], E.ERR_LOG_ANCHOR),
        "count_zero": (world.maker, fresh, H[6], 0, ZERO_HEAD, E.ERR_LOG_ANCHOR),
        "head_short": (world.maker, pid, H[6][:31], 4, H[5], E.ERR_INVALID_PASSPORT),
        "previous_long": (world.maker, pid, H[6], 4, H[5] + b"\x00", E.ERR_INVALID_PASSPORT),
        "unknown_passport": (world.maker, "00000000-0000-4000-8000-000000000000", H[6], 4, ZERO_HEAD,
                             E.ERR_UNKNOWN_PASSPORT),
    }[case]
    before = world.dump()
    world.refused(anchor(world, org, target, head, count, previous), kind)
    unchanged(world, before)


def test_invariant_catches_a_broken_anchor_chain(world):
    pid, _ = world.register(0x04)
    anchor(world, world.maker, pid, H[1], 1, ZERO_HEAD).raise_for_error()
    anchor(world, world.maker, pid, H[2], 2, H[1]).raise_for_error()
    devices = DevicesKeeper(IDENTITY)
    check_passports(devices, world.ledger.store)
    broken = msgspec.msgpack.encode(LogAnchor(1, H[1], 1, H[7], 1))  # the first anchor follows no zero head
    with pytest.raises(InvariantBroken):
        check_passports(devices, EditedState(world.ledger.store, {log_anchor_key(pid, 1): broken}))
