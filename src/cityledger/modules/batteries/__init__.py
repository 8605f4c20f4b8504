"""batteries: EV battery passports and their life cycle (EU Regulation 2023/1542), on registered devices."""

from functools import partial

from ...core.statekeys import PREFIX_BATTERIES
from ..base import Module
from .accesslog import (get_anchor, get_last_anchor, get_log_root, get_report_root, process_anchor_log,
                        process_anchor_log_root, process_anchor_report_root)
from .errors import ERRORS
from .expected import Devices, Identity
from .genesis import init_genesis
from .handlers import (
    compute_report_payload,
    get_history,
    get_passport,
    get_passport_by_dmc,
    get_stage_count,
    is_passport_id,
    process_collect,
    process_install,
    process_place_on_market,
    process_register,
    process_remanufacture,
    process_repair,
    process_report,
    process_repurpose,
    process_update_document,
)
from .invariants import check_passports
from .messages import (
    ZERO_HEAD,
    AnchorAccessLog,
    AnchorLogRoot,
    AnchorReportRoot,
    CLOSED_STAGES,
    ROLE_MANUFACTURER,
    ROLE_PASSPORT_SERVICE,
    ROLE_RECYCLER,
    ROLE_REMANUFACTURER,
    ROLE_REPAIRER,
    ROLE_SECOND_LIFE,
    ROLE_VEHICLE_MAKER,
    STAGES,
    TIERS,
    TRANSITIONS,
    Collect,
    Install,
    Materials,
    PassportRecord,
    PlaceOnMarket,
    Recycle,
    RegisterPassport,
    Remanufacture,
    Repair,
    ReportHealth,
    Repurpose,
    UpdateDocument,
)
from .queries import (query_access_log, query_awaiting_recycling, query_by_stage, query_list, query_log_root,
                      query_passport, query_recycling, query_report_root, query_second_life, query_recycler,
                      query_reports, query_stages, query_targets)
from .recycling import get_batch, get_recycler_totals, process_recycle
from .targets import TARGETS, Target


def new_module(identity: Identity, devices: Devices) -> Module:
    """The batteries module, given what it needs of identity and devices (node/modules.py wires them)."""
    return Module(
        name="batteries",
        prefix=PREFIX_BATTERIES,
        errors=ERRORS,
        handlers={
            RegisterPassport: partial(process_register, identity, devices),
            PlaceOnMarket: partial(process_place_on_market, identity),
            Install: partial(process_install, identity, devices),
            ReportHealth: partial(process_report, devices),
            Repair: partial(process_repair, identity),
            Repurpose: partial(process_repurpose, identity, devices),
            Remanufacture: partial(process_remanufacture, identity, devices),
            Collect: partial(process_collect, identity),
            Recycle: partial(process_recycle, identity),
            UpdateDocument: partial(process_update_document, identity),
            AnchorAccessLog: partial(process_anchor_log, identity),
            AnchorLogRoot: partial(process_anchor_log_root, identity),
            AnchorReportRoot: partial(process_anchor_report_root, identity),
        },
        queries={"passport": query_passport, "reports": query_reports, "stages": query_stages,
                 "recycler": query_recycler, "recycling": query_recycling, "targets": query_targets,
                 "access_log": query_access_log, "log_root": query_log_root, "by_stage": query_by_stage,
                 "second_life": query_second_life, "awaiting_recycling": query_awaiting_recycling,
                 "report_root": query_report_root, "list": query_list},
        init_genesis=init_genesis,
        invariants=(partial(check_passports, devices),),
    )


__all__ = [
    "AnchorAccessLog", "AnchorLogRoot", "AnchorReportRoot", "CLOSED_STAGES", "Collect", "Devices", "ERRORS",
    "Identity", "Install", "Materials", "PassportRecord", "PlaceOnMarket", "ROLE_MANUFACTURER", "ROLE_PASSPORT_SERVICE",
    "ROLE_RECYCLER", "ROLE_REMANUFACTURER", "ROLE_REPAIRER",
    "ROLE_SECOND_LIFE", "ROLE_VEHICLE_MAKER", "Recycle", "RegisterPassport", "Remanufacture", "Repair",
    "ReportHealth", "Repurpose", "STAGES", "TARGETS", "TIERS", "TRANSITIONS", "Target", "UpdateDocument",
    "ZERO_HEAD", "compute_report_payload", "get_anchor", "get_batch", "get_history", "get_last_anchor", "get_log_root",
    "get_report_root",
    "get_passport", "get_passport_by_dmc", "get_recycler_totals", "get_stage_count", "is_passport_id", "new_module",
]
