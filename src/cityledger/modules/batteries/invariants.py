"""Battery passport invariants: a stage is valid, the history only grows along allowed transitions,
a closed passport has a successor that points back, and the stage counts add up."""

from __future__ import annotations

from ...core.errors import InvariantBroken
from ...core.state import PrefixReader
from ..devices.messages import KIND_BATTERY
from .accesslog import check_anchors
from .expected import Devices
from .handlers import decode_passport, get_history, get_passport, get_report, get_stage_count, is_in_second_life
from .keys import (PASSPORTS_PREFIX, SECOND_LIFE_PREFIX, battery_key, history_key, report_key, second_life_key,
                   stage_index_key, stage_index_prefix)
from .messages import (
    EVENT_REGISTERED,
    EVENT_SUCCEEDED,
    HASH_LEN,
    MAX_DOCUMENT_VERSIONS,
    STAGE_RECYCLED,
    STAGES,
    SUCCESSOR_STAGES,
    TIERS,
    TRANSITIONS,
    PassportRecord,
)


def check_passports(devices: Devices, state: PrefixReader) -> None:
    """Raise InvariantBroken on a passport whose stage, history, links or counts do not hold."""
    counts = dict.fromkeys(STAGES, 0)
    for _, raw in state.iter_prefix(PASSPORTS_PREFIX):
        record = decode_passport(raw)
        if record.stage not in STAGES:
            raise InvariantBroken(f"batteries: {record.passport} has stage {record.stage!r}")
        counts[record.stage] += 1
        check_history(state, record)
        check_links(state, record)
        check_documents(record)
        check_anchors(state, record)
        device = devices.get_device(state, record.battery)
        if device is None or device.kind != KIND_BATTERY:
            raise InvariantBroken(f"batteries: {record.passport} names {record.battery}, not a battery device")
        if record.report_count and get_report(state, record.passport, record.report_count) is None:
            raise InvariantBroken(f"batteries: {record.passport} lost report {record.report_count}")
        if state.get(report_key(record.passport, record.report_count + 1)) is not None:
            raise InvariantBroken(f"batteries: {record.passport} has a report past its count")
        if state.get(stage_index_key(record.stage, record.passport)) is None:
            raise InvariantBroken(f"batteries: {record.passport} is missing from the {record.stage} index")
        if (state.get(second_life_key(record.passport)) is not None) != \
                is_in_second_life(state, record.predecessor, record.stage):
            raise InvariantBroken(f"batteries: {record.passport}'s second-life index entry is wrong")
    for stage, count in counts.items():
        if get_stage_count(state, stage) != count:
            raise InvariantBroken(f"batteries: {count} passports at {stage}, counted {get_stage_count(state, stage)}")
        indexed = sum(1 for _ in state.iter_prefix(stage_index_prefix(stage)))
        if indexed != count:
            raise InvariantBroken(f"batteries: {count} passports at {stage}, {indexed} in its index")
    for key, _ in state.iter_prefix(SECOND_LIFE_PREFIX):
        if get_passport(state, key[len(SECOND_LIFE_PREFIX) + 1:].decode()) is None:
            raise InvariantBroken("batteries: the second-life index names an unknown passport")


def check_history(state: PrefixReader, record: PassportRecord) -> None:
    """Raise unless the history is gapless, in height order, and every step an allowed transition."""
    if state.get(history_key(record.passport, record.history_len)) is not None:
        raise InvariantBroken(f"batteries: {record.passport} has events past its history length")
    history = get_history(state, record)
    first = EVENT_SUCCEEDED if record.predecessor else EVENT_REGISTERED
    if not history or history[0].event != first:
        raise InvariantBroken(f"batteries: {record.passport} does not start with {first}")
    previous = history[0]
    for entry in history[1:]:
        allowed_from, stage, _ = TRANSITIONS.get(entry.event, ((), "", ""))
        if previous.stage not in allowed_from or entry.stage != stage or entry.height < previous.height:
            raise InvariantBroken(f"batteries: {record.passport} went {previous.stage} -> {entry.event}")
        previous = entry
    if previous.stage != record.stage or history[0].height != record.created_height:
        raise InvariantBroken(f"batteries: {record.passport} is at {record.stage}, its history at {previous.stage}")


def check_links(state: PrefixReader, record: PassportRecord) -> None:
    """Raise unless closing by succession and the predecessor/successor links agree both ways."""
    if (record.stage in SUCCESSOR_STAGES) != bool(record.successor):
        raise InvariantBroken(f"batteries: {record.passport} at {record.stage} has successor {record.successor!r}")
    if record.successor:
        successor = get_passport(state, record.successor)
        if successor is None or successor.predecessor != record.passport or successor.battery != record.battery:
            raise InvariantBroken(f"batteries: {record.passport}'s successor does not point back")
    if record.predecessor:
        predecessor = get_passport(state, record.predecessor)
        if predecessor is None or predecessor.successor != record.passport:
            raise InvariantBroken(f"batteries: {record.passport}'s predecessor does not name it")
    if (record.stage == STAGE_RECYCLED) != bool(record.recycling_batch):
        raise InvariantBroken(f"batteries: {record.passport} at {record.stage} has batch {record.recycling_batch!r}")
    if not record.successor and state.get(battery_key(record.battery)) != record.passport.encode():
        raise InvariantBroken(f"batteries: {record.battery}'s current passport is not {record.passport}")


def check_documents(record: PassportRecord) -> None:
    """Raise unless every tier has 1 to MAX_DOCUMENT_VERSIONS hashes, recorded in height order."""
    for tier in TIERS:
        versions = getattr(record.documents, tier)
        if not 1 <= len(versions) <= MAX_DOCUMENT_VERSIONS:
            raise InvariantBroken(f"batteries: {record.passport} has {len(versions)} {tier} versions")
        heights = [version.height for version in versions]
        if heights != sorted(heights) or any(len(v.document_hash) != HASH_LEN for v in versions):
            raise InvariantBroken(f"batteries: {record.passport}'s {tier} versions are out of order or malformed")
