"""Recycling batches: which collected batteries went in, which masses came out, per recycler.

Masses are integer grams and every rate is integer per-mille (targets.py), so the state and its
queries never touch a float.
"""

from __future__ import annotations

from typing import Any

from ...core.encoding import decoder, encode
from ...core.state import StateReader
from ..base import Context
from ..identity.did import is_did
from .errors import ERR_BATCH_EXISTS, ERR_INVALID_RECYCLING, ERR_WRONG_STAGE
from .expected import Identity
from .handlers import check_passport_id, is_printable_id, require_actor, require_passport, save_transition
from .keys import batch_key, recycler_key, recycler_year_key
from .messages import (
    ELEMENTS,
    EVENT_RECYCLED,
    MAX_BATCH_ID_LEN,
    MAX_BATCH_PASSPORTS,
    MAX_MASS_G,
    MAX_TOTAL_MASS_G,
    TRANSITIONS,
    Materials,
    PassportRecord,
    Recycle,
    RecyclerTotals,
    RecyclingBatch,
)
from .targets import KIND_MATERIAL_RECOVERY, KIND_RECYCLING_EFFICIENCY, compute_per_mille, targets_of

_BATCH = decoder(RecyclingBatch)
_TOTALS = decoder(RecyclerTotals)
NO_MATERIALS = Materials(0, 0, 0, 0, 0)
MIN_YEAR, MAX_YEAR = 1970, 9999  # calendar years a recycler's yearly totals may be asked for


def get_batch(state: StateReader, recycler: str, batch: str) -> RecyclingBatch | None:
    """A recycler's batch, or None."""
    if not is_did(recycler) or not is_printable_id(batch):
        return None
    raw = state.get(batch_key(recycler, batch))
    return None if raw is None else _BATCH.decode_lenient(raw)


def get_recycler_totals(state: StateReader, recycler: str) -> RecyclerTotals | None:
    """Sums over a recycler's batches, or None if it recorded none."""
    if not is_did(recycler):
        return None
    raw = state.get(recycler_key(recycler))
    return None if raw is None else _TOTALS.decode_lenient(raw)


def decode_totals(raw: bytes) -> RecyclerTotals:
    """A stored RecyclerTotals."""
    return _TOTALS.decode_lenient(raw)


def add_totals(a: RecyclerTotals, b: RecyclerTotals) -> RecyclerTotals:
    """Two recyclers' totals summed, under a's name (the city-wide picture)."""
    return RecyclerTotals(a.recycler, a.batches + b.batches, a.batteries + b.batteries, a.input_mass_g + b.input_mass_g,
                          a.output_mass_g + b.output_mass_g, add_materials(a.contained, b.contained),
                          add_materials(a.recovered, b.recovered))


def add_materials(a: Materials, b: Materials) -> Materials:
    """Element-wise sum."""
    return Materials(*(getattr(a, name) + getattr(b, name) for name in ELEMENTS))


def add_batch(totals: RecyclerTotals, msg: Recycle, batteries: int) -> RecyclerTotals:
    """Totals with one more batch added."""
    return RecyclerTotals(totals.recycler, totals.batches + 1, totals.batteries + batteries,
                          totals.input_mass_g + msg.input_mass_g, totals.output_mass_g + msg.output_mass_g,
                          add_materials(totals.contained, msg.contained),
                          add_materials(totals.recovered, msg.recovered))


def compute_year(time_ns: int) -> int:
    """The UTC calendar year of a block time, in integers only (days to civil date, Hinnant's algorithm)."""
    days = time_ns // (86_400 * 10**9) + 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1_460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # 0 = March ... 11 = February
    return year_of_era + era * 400 + (1 if month_index >= 10 else 0)


def get_recycler_year(state: StateReader, recycler: str, year: int) -> RecyclerTotals | None:
    """Sums over a recycler's batches recorded in one calendar year, or None."""
    if not is_did(recycler) or not MIN_YEAR <= year <= MAX_YEAR:
        return None
    raw = state.get(recycler_year_key(recycler, year))
    return None if raw is None else _TOTALS.decode_lenient(raw)


def _check_masses(msg: Recycle) -> None:
    """Raise unless the batch's masses are integer grams that add up."""
    masses = [("input_mass_g", msg.input_mass_g), ("output_mass_g", msg.output_mass_g)]
    masses += [(f"{side}.{name}", getattr(getattr(msg, side), name))
               for side in ("contained", "recovered") for name in ELEMENTS]
    for field, value in masses:
        if not 0 <= value <= MAX_MASS_G:
            raise ERR_INVALID_RECYCLING(f"{field}: expected grams from 0 to {MAX_MASS_G}, got {value}", field)
    if msg.input_mass_g == 0:
        raise ERR_INVALID_RECYCLING("input_mass_g: expected the batch's mass, got 0", "input_mass_g")
    if msg.output_mass_g > msg.input_mass_g:
        raise ERR_INVALID_RECYCLING("output_mass_g: more than input_mass_g", "output_mass_g")
    if sum(getattr(msg.contained, name) for name in ELEMENTS) > msg.input_mass_g:
        raise ERR_INVALID_RECYCLING("contained: the elements weigh more than the batch", "contained")
    for name in ELEMENTS:
        if getattr(msg.recovered, name) > getattr(msg.contained, name):
            raise ERR_INVALID_RECYCLING(f"recovered.{name}: more than contained.{name}", f"recovered.{name}")


def _check_batch_passports(ctx: Context, passports: list[str]) -> list[PassportRecord]:
    """The batch's passports, each open and in stage waste; raise otherwise."""
    if not 1 <= len(passports) <= MAX_BATCH_PASSPORTS:
        raise ERR_INVALID_RECYCLING(f"passports: expected 1 to {MAX_BATCH_PASSPORTS}, got {len(passports)}",
                                    "passports")
    for index, passport in enumerate(passports):
        check_passport_id(passport, f"passports[{index}]")
    if passports != sorted(set(passports)):
        raise ERR_INVALID_RECYCLING("passports: expected sorted and distinct ids", "passports")
    records = [require_passport(ctx, passport) for passport in passports]
    allowed_from = TRANSITIONS[EVENT_RECYCLED][0]
    for record in records:
        if record.stage not in allowed_from:
            raise ERR_WRONG_STAGE(f"passports: {record.passport} is at stage {record.stage}; recycling needs "
                                  f"{list(allowed_from)}", "passports")
    return records


def process_recycle(identity: Identity, ctx: Context, msg: Recycle) -> None:
    """A recycler records a batch: its collected batteries are recycled, their passports closed."""
    # Check: a well-formed, unused batch id and masses; an accredited recycler; passports in waste.
    if not is_printable_id(msg.batch) or len(msg.batch) > MAX_BATCH_ID_LEN:
        raise ERR_INVALID_RECYCLING(f"batch: expected 1 to {MAX_BATCH_ID_LEN} printable ASCII characters "
                                    f"without spaces, got {msg.batch[:80]!r}", "batch")
    _check_masses(msg)
    require_actor(identity, ctx, msg.operator, TRANSITIONS[EVENT_RECYCLED][2])
    if ctx.state.get(batch_key(msg.operator, msg.batch)) is not None:
        raise ERR_BATCH_EXISTS(f"batch: {msg.operator} already recorded batch {msg.batch!r}", "batch")
    records = _check_batch_passports(ctx, msg.passports)
    totals = get_recycler_totals(ctx.state, msg.operator) or RecyclerTotals(msg.operator, 0, 0, 0, 0, NO_MATERIALS,
                                                                            NO_MATERIALS)
    if totals.input_mass_g + msg.input_mass_g > MAX_TOTAL_MASS_G:
        raise ERR_INVALID_RECYCLING(f"input_mass_g: the recycler's total would pass {MAX_TOTAL_MASS_G} g",
                                    "input_mass_g")
    for record in records:
        save_transition(ctx, record, EVENT_RECYCLED, msg.operator, recycling_batch=msg.batch)
    batch = RecyclingBatch(msg.operator, msg.batch, list(msg.passports), msg.input_mass_g, msg.output_mass_g,
                           msg.contained, msg.recovered, ctx.height)
    ctx.state.set(batch_key(msg.operator, msg.batch), encode(batch))
    totals = add_batch(totals, msg, len(records))
    ctx.state.set(recycler_key(msg.operator), encode(totals))
    year = min(max(compute_year(ctx.time_ns), MIN_YEAR), MAX_YEAR)  # a block time out of range stays in
    yearly = get_recycler_year(ctx.state, msg.operator, year) or RecyclerTotals(msg.operator, 0, 0, 0, 0, NO_MATERIALS,
                                                                               NO_MATERIALS)
    ctx.state.set(recycler_year_key(msg.operator, year), encode(add_batch(yearly, msg, len(records))))
    ctx.emit("battery_batch_recycled", recycler=msg.operator, batch=msg.batch, batteries=len(records))


def compute_rates(totals: RecyclerTotals) -> dict[str, Any]:
    """Per-mille recovery rates and recycling efficiency, each against its Annex XII targets."""
    recovery = {}
    for name in ELEMENTS:
        contained, recovered = getattr(totals.contained, name), getattr(totals.recovered, name)
        rate = compute_per_mille(recovered, contained)
        rows = [t for t in targets_of(KIND_MATERIAL_RECOVERY) if t.material == name]
        recovery[name] = {"contained_g": contained, "recovered_g": recovered, "per_mille": rate,
                          "targets": [_verdict(rate, t) for t in rows]}
    efficiency = compute_per_mille(totals.output_mass_g, totals.input_mass_g)
    efficiency_targets = [_verdict(efficiency, t) for t in targets_of(KIND_RECYCLING_EFFICIENCY)]
    return {"material_recovery": recovery,
            "recycling_efficiency": {"per_mille": efficiency, "targets": efficiency_targets}}


def _verdict(rate: int | None, target: Any) -> dict[str, Any]:
    """One target row and whether `rate` meets it (None: nothing of that material went in)."""
    return {"per_mille": target.per_mille, "by": target.by, "reference": target.reference,
            "met": None if rate is None else rate >= target.per_mille}
