"""Battery passport queries: a passport by id or idDmc, its reports, counts by stage, recyclers, their sum."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ...core.state import StateReader
from .accesslog import get_anchor, get_last_anchor, get_log_root, get_report_root
from ..paging import scan_owned
from .handlers import (decode_passport, get_history, is_passport_id, get_passport, get_passport_by_dmc, get_report,
                       get_stage_count)
from .keys import PASSPORTS_PREFIX, RECYCLERS_PREFIX, SECOND_LIFE_PREFIX, stage_index_prefix
from .messages import (ELEMENTS, MAX_LOG_ANCHORS, MAX_LOG_ROOTS, MAX_REPORTS, STAGE_WASTE, STAGES, TIERS, PassportRecord,
                       RecyclerTotals)
from .recycling import (MAX_YEAR, MIN_YEAR, NO_MATERIALS, add_totals, compute_rates, decode_totals,
                        get_recycler_totals, get_recycler_year)
from .targets import TARGETS

MAX_QUERY_REPORTS = 100  # report commitments answered per query; page on with "from"
MAX_QUERY_PASSPORTS = 100  # passport ids answered per list query; page on with "after"
MAX_QUERY_RECYCLERS = 1_000  # recyclers summed by /batteries/recycling (accredited firms: a handful per city)


def _passport_view(state: StateReader, record: PassportRecord) -> dict[str, Any]:
    documents = {tier: [{"hash": v.document_hash.hex(), "height": v.height} for v in getattr(record.documents, tier)]
                 for tier in TIERS}
    history = [{"event": e.event, "stage": e.stage, "actor": e.actor, "height": e.height}
               for e in get_history(state, record)]
    return {"passport": record.passport, "id_dmc": record.id_dmc, "battery": record.battery,
            "operator": record.operator, "stage": record.stage, "vehicle": record.vehicle or None,
            "predecessor": record.predecessor or None, "successor": record.successor or None,
            "documents": documents, "history": history, "report_count": record.report_count,
            "recycling_batch": record.recycling_batch or None, "created_height": record.created_height,
            "updated_height": record.updated_height}


def query_passport(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A passport by {'id'} or by {'id_dmc'} (the latest passport issued under that identifier)."""
    if "id" in args:
        record = get_passport(state, args["id"])
    elif "id_dmc" in args:
        record = get_passport_by_dmc(state, args["id_dmc"])
    else:
        raise ValueError("id, id_dmc: expected one of them")
    if record is None:
        raise LookupError(f"passport: none for {args.get('id', args.get('id_dmc', ''))[:80]!r}")
    return _passport_view(state, record)


def query_reports(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A passport's report commitments from {'id', 'from' (default 1)}, at most MAX_QUERY_REPORTS."""
    record = get_passport(state, args.get("id", ""))
    if record is None:
        raise LookupError(f"id: no passport {args.get('id', '')!r}")
    start = args.get("from", "1")
    if not (start.isascii() and start.isdigit()) or not 1 <= int(start) <= MAX_REPORTS:
        raise ValueError(f"from: expected a sequence number from 1 to {MAX_REPORTS}")
    last = min(record.report_count, int(start) + MAX_QUERY_REPORTS - 1)
    reports = [get_report(state, record.passport, sequence) for sequence in range(int(start), last + 1)]
    return {"passport": record.passport, "report_count": record.report_count,
            "reports": [{"sequence": r.sequence, "report_hash": r.report_hash.hex(), "height": r.height}
                        for r in reports]}


def query_stages(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """How many passports are in each life-cycle stage."""
    return {"stages": {stage: get_stage_count(state, stage) for stage in STAGES}}


def query_recycler(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A recycler's totals by {'did', 'year' (optional: that calendar year's batches)}, with per-mille rates
    against the Annex XII targets."""
    did, year = args.get("did", "")[:200], args.get("year")
    if year is not None and not (year.isascii() and year.isdigit() and MIN_YEAR <= int(year) <= MAX_YEAR):
        raise ValueError(f"year: expected a calendar year from {MIN_YEAR} to {MAX_YEAR}, got {year[:20]!r}")
    totals = get_recycler_totals(state, did) if year is None else get_recycler_year(state, did, int(year))
    if totals is None:
        raise LookupError(f"did: no recycling recorded by {did!r}" + (f" in {year}" if year else ""))
    return {"recycler": totals.recycler, "year": None if year is None else int(year), "batches": totals.batches,
            "batteries": totals.batteries,
            "input_mass_g": totals.input_mass_g, "output_mass_g": totals.output_mass_g,
            "elements": list(ELEMENTS), **compute_rates(totals)}


def query_recycling(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Every recycler's totals summed (the first MAX_QUERY_RECYCLERS by DID), with per-mille rates against the
    Annex XII targets."""
    total, recyclers, complete = RecyclerTotals("", 0, 0, 0, 0, NO_MATERIALS, NO_MATERIALS), 0, True
    for _, raw in state.iter_prefix(RECYCLERS_PREFIX):
        if recyclers == MAX_QUERY_RECYCLERS:
            complete = False
            break
        total = add_totals(total, decode_totals(raw))
        recyclers += 1
    return {"recyclers": recyclers, "complete": complete, "batches": total.batches, "batteries": total.batteries,
            "input_mass_g": total.input_mass_g, "output_mass_g": total.output_mass_g, "elements": list(ELEMENTS),
            **compute_rates(total)}


def query_targets(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The Regulation's targets (targets.py), per-mille, with their article references."""
    return {"targets": [asdict(target) for target in TARGETS]}


def query_access_log(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A passport's access-log anchors from {'id', 'from' (default 1)}, at most MAX_QUERY_REPORTS, and its latest."""
    record = get_passport(state, args.get("id", ""))
    if record is None:
        raise LookupError(f"id: no passport {args.get('id', '')[:80]!r}")
    start = args.get("from", "1")
    if not (start.isascii() and start.isdigit()) or not 1 <= int(start) <= MAX_LOG_ANCHORS:
        raise ValueError(f"from: expected an anchor index from 1 to {MAX_LOG_ANCHORS}")
    last = get_last_anchor(state, record.passport)
    total = 0 if last is None else last.index
    anchors = [get_anchor(state, record.passport, index)
               for index in range(int(start), min(total, int(start) + MAX_QUERY_REPORTS - 1) + 1)]
    return {"passport": record.passport, "anchor_count": total,
            "head": None if last is None else last.head.hex(), "count": 0 if last is None else last.count,
            "height": None if last is None else last.height,
            "anchors": [{"index": a.index, "head": a.head.hex(), "count": a.count, "previous": a.previous.hex(),
                         "height": a.height} for a in anchors if a is not None]}


def query_log_root(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A passport service's anchored log root by {'service', 'seq' (default: the latest)}."""
    return _root_view(state, args, get_log_root, "log root")


def query_report_root(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """A passport service's committed SoH report batch root by {'service', 'seq' (default: the latest)}."""
    return _root_view(state, args, get_report_root, "report root")


def _root_view(state: StateReader, args: dict[str, str], get, what: str) -> dict[str, Any]:
    service = args.get("service", "")
    last = get(state, service)
    if last is None:
        raise LookupError(f"service: no {what} anchored by {service[:80]!r}")
    seq = args.get("seq", str(last.seq))
    if not (seq.isascii() and seq.isdigit()) or not 1 <= int(seq) <= min(last.seq, MAX_LOG_ROOTS):
        raise ValueError(f"seq: expected a sequence number from 1 to {last.seq}, got {seq[:20]!r}")
    root = get(state, service, int(seq))
    return {"service": service, "last_seq": last.seq, "seq": root.seq, "root": root.root.hex(), "size": root.size,
            "height": root.height}


def _list_page(state: StateReader, prefix: bytes, args: dict[str, str]) -> tuple[list[str], str | None]:
    """Passport ids under an index prefix after {'after'}, at most MAX_QUERY_PASSPORTS; and the next 'after'."""
    after = args.get("after", "")
    if after and not is_passport_id(after):
        raise ValueError(f"after: expected a lower-case UUIDv4 passport id, got {after[:80]!r}")
    found: list[str] = []
    for key, _ in state.iter_prefix(prefix):  # keys sort by passport id within the prefix
        passport = key[len(prefix) + 1:].decode()
        if passport > after:
            found.append(passport)
            if len(found) > MAX_QUERY_PASSPORTS:
                return found[:-1], found[-2]
    return found, None


def query_list(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Every passport in id order (the explorer's city-wide list), public fields only, paged by {'after'}."""
    return scan_owned(state, PASSPORTS_PREFIX, args, decode_passport, lambda record: True, lambda record: {
        "passport": record.passport, "stage": record.stage, "operator": record.operator,
        "created_height": record.created_height, "updated_height": record.updated_height})


def query_by_stage(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """The passports at {'stage'}, by id, from {'after'} on: at most MAX_QUERY_PASSPORTS, and 'next' to page on."""
    stage = args.get("stage", "")
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage[:40]!r}")
    passports, after = _list_page(state, stage_index_prefix(stage), args)
    return {"stage": stage, "count": get_stage_count(state, stage), "passports": passports, "next": after}


def query_second_life(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Passports in their second life (a repurposed battery's open, uncollected successor), from {'after'} on."""
    passports, after = _list_page(state, SECOND_LIFE_PREFIX, args)
    return {"passports": passports, "next": after}


def query_awaiting_recycling(state: StateReader, args: dict[str, str]) -> dict[str, Any]:
    """Collected batteries (stage waste) not yet in a recycling batch, from {'after'} on."""
    return query_by_stage(state, {**args, "stage": STAGE_WASTE})
