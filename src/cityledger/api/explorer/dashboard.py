"""The city dashboard (/dashboard): plotly charts over JSON routes that are part of the REST API.

Each chart's data is one route under /dashboard/data/, in the OpenAPI document with its wire
Struct, so a consortium's own tools read the same figures. The charts are drawn by plotly.js from the
installed `plotly` package, served by the node under a versioned URL (no CDN, cached by browsers).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from functools import partial
from importlib.metadata import version
from importlib.resources import files

import msgspec
from fastapi import APIRouter, FastAPI, Query
from starlette.responses import FileResponse, HTMLResponse, Response

from ...core.errors import TxError
from ...modules.batteries.messages import STAGE_IN_SERVICE, STAGE_REPAIRED
from ...offchain.passport.reports import SOH_ALERT_PERCENT
from ...offchain.passport.store import ReportBook
from ...wire.dashboard import (
    DASHBOARD_VIEW_TYPES,
    BatteryAlertsView,
    BatteryStagesView,
    ChainChartView,
    ChargingPerDayView,
    DevicesByKindView,
    PaymentsPerDayView,
    ProgrammeBudget,
    RecyclingView,
    RewardsView,
    ValidatorSigning,
    ValidatorsView,
)
from ..codec import json_response
from ..errors import ApiError
from ..routes.common import add_schemas
from ..service import NodeService
from .pages import Pages
from .tally import MAX_CHART_DAYS, Tally, show_day

DEFAULT_CHART_BLOCKS = 100
MAX_CHART_BLOCKS = 500  # blocks behind one chain chart: each is one indexed read and its txs' decoding
DEFAULT_CHART_DAYS = 30
MAX_CHART_PROGRAMMES = 50  # reward programmes in the budgets chart (the newest)
MAX_ALERT_PASSPORTS = 1_000  # alerted passports one answer looks up (a stage read each); past it: complete false
FIRST_LIFE = (STAGE_IN_SERVICE, STAGE_REPAIRED)
PLOTLY_VERSION = version("plotly")
PLOTLY_URL = f"/dashboard/plotly-{PLOTLY_VERSION}.min.js"
# plotly.js adds <style> elements and draws into blob/data images; nothing leaves the node's origin.
DASHBOARD_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                 "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
CACHE_FOREVER = "public, max-age=31536000, immutable"  # the URL changes with plotly's version


def _doc(view: str, *refusals: int) -> dict:
    out: dict = {200: {"description": "OK", "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{view}"}}}}}
    for status in refusals:
        out[status] = {"description": "Refused or unavailable, the field named in error.field",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return out


def compute_module(tag: str) -> str:
    """The module of a message type tag: "bank" of "bank/1.0/transfer"."""
    return tag.split("/", 1)[0]


def chain_chart(service: NodeService, count: int) -> ChainChartView:
    """The last `count` blocks as series, with the messages in them counted by module."""
    node = service.node
    top = node.store.last_height()
    heights, intervals, txs, modules = [], [], [], Counter()
    previous = node.store.height_info(max(top - count, 0))
    for height in range(max(top - count + 1, 1), top + 1):
        block = node.store.get_block(height)
        if block is None:
            continue
        heights.append(height)
        gap = block.time_ns - previous.time_ns if previous is not None and previous.height < height else 0
        intervals.append(max(gap, 0) // 1_000_000)
        txs.append(len(block.txs))
        for raw in block.txs:
            try:
                decoded = node.app.codec.decode(raw)
            except TxError:  # committed under rules this node no longer decodes
                continue
            modules.update(compute_module(type(m).__struct_config__.tag) for m in decoded.tx.body.messages)
        previous = node.store.height_info(height)
    validators = service.query("governance", "validators", {}).result["validators"]
    return ChainChartView(from_height=heights[0] if heights else 0, to_height=top, heights=heights,
                          interval_ms=intervals, txs=txs, txs_by_module=dict(sorted(modules.items())),
                          mempool_size=service.status().mempool_size, validators=len(validators))


def validators_chart(service: NodeService, count: int) -> ValidatorsView:
    """The validator set in state and who signed the newest `count` commits, as the engine saw them."""
    node = service.node
    top = node.store.last_height()
    members = service.query("governance", "validators", {}).result["validators"]
    addresses = {hashlib.sha256(bytes.fromhex(v["pub_key"])).digest()[:20]: v for v in members}
    commits = node.engine.recent_commits(count)
    if commits is None:  # solo: this node alone commits each block, so the set signs every stored one
        source = "solo"
        rows = [(height, set(addresses)) for height in range(max(top - count + 1, 1), top + 1)]
        power = {address: v["power"] for address, v in addresses.items()}
    else:
        source = "votes"
        rows = [(c.height, {address for address, _, signed in c.votes if signed}) for c in commits]
        power = {address: p for c in commits for address, p, _ in c.votes}
        power.update({address: v["power"] for address, v in addresses.items()})
    newest = rows[-1][1] if rows else set()
    signing = [ValidatorSigning(pub_key=v["pub_key"], address=address.hex().upper(), power=v["power"],
                                signed=sum(address in signers for _, signers in rows),
                                last_signed=next((h for h, signers in reversed(rows) if address in signers), None),
                                up=address in newest)
               for address, v in sorted(addresses.items(), key=lambda item: item[1]["pub_key"])]
    return ValidatorsView(height=top, engine=node.engine.name, source=source, heights=[h for h, _ in rows],
                          signed_power=[sum(power.get(a, 0) for a in signers) for _, signers in rows],
                          total_power=sum(v["power"] for v in members), up=sum(v.up for v in signing),
                          validators=signing)


def charging_chart(service: NodeService, days: int) -> ChargingPerDayView:
    """The node's CSMS's ended sessions and energy per day (its own store); 404 on a node without a CSMS."""
    charging = getattr(service.node, "charging", None)
    if charging is None:
        raise ApiError(404, "charging/unavailable", "charging: this node runs no CSMS ([charging] enabled = false); "
                       "energy is not on the ledger, only a CSMS's store holds it")
    rows = charging.store.days(days)
    return ChargingPerDayView(days=[day for day, _, _ in rows], sessions=[count for _, count, _ in rows],
                              energy_wh=[energy for _, _, energy in rows])


class PerHeight:
    """One answer per chain height: the state-derived charts are computed once per block, not per request."""

    def __init__(self, service: NodeService, compute) -> None:
        self.service, self.compute = service, compute
        self.lock = threading.Lock()
        self.height, self.answer = -1, None

    def get(self):
        height = self.service.node.store.last_height()
        with self.lock:
            if height != self.height:
                self.answer, self.height = self.compute(height), height
            return self.answer


def payments_chart(tally: Tally, service: NodeService, days: int) -> PaymentsPerDayView:
    """Payments per day of block time from the tally, the last `days` days with any."""
    counted = tally.fold()
    rows = tally.payment_days(days)
    kinds = sorted({kind for _, day in rows for kind in day["redeemed"]})
    return PaymentsPerDayView(counted_to=counted, height=service.node.store.last_height(),
                              days=[show_day(number) for number, _ in rows],
                              redeemed={kind: [day["redeemed"].get(kind, 0) for _, day in rows] for kind in kinds},
                              paid={kind: [day["paid"].get(kind, 0) for _, day in rows] for kind in kinds},
                              channels_opened=[day["opened"] for _, day in rows])


def recycling_chart(service: NodeService, height: int) -> RecyclingView:
    """Every recycler's totals summed, against the Annex XII targets (/batteries/recycling)."""
    result = service.query("batteries", "recycling", {}).result
    return msgspec.convert({"height": height, **{k: v for k, v in result.items() if k != "elements"}}, RecyclingView)


def alerts_chart(service: NodeService, height: int) -> BatteryAlertsView:
    """The node's passport service's alerted passports, counted by their stage on chain now."""
    alerted = ReportBook(service.node.passports).alerted("", MAX_ALERT_PASSPORTS + 1)
    stages: Counter = Counter()
    for passport in alerted[:MAX_ALERT_PASSPORTS]:
        try:
            stages[service.query("batteries", "passport", {"id": passport}).result["stage"]] += 1
        except ApiError:  # a passport the chain does not hold (another chain's store): not counted
            continue
    return BatteryAlertsView(height=height, threshold_percent=SOH_ALERT_PERCENT, alerted=sum(stages.values()),
                             by_stage=dict(sorted(stages.items())),
                             near_end_of_first_life=sum(stages[stage] for stage in FIRST_LIFE),
                             complete=len(alerted) <= MAX_ALERT_PASSPORTS)


def rewards_chart(service: NodeService, height: int) -> RewardsView:
    """The newest MAX_CHART_PROGRAMMES reward programmes' budgets and claims (/mobility/programmes)."""
    result = service.query("mobility", "programmes", {}).result
    programmes = [msgspec.convert({name: p[name] for name in ProgrammeBudget.__struct_fields__}, ProgrammeBudget)
                  for p in result["programmes"][:MAX_CHART_PROGRAMMES]]
    return RewardsView(height=height, count=result["count"], programmes=programmes)


def include_dashboard(app: FastAPI, service: NodeService, pages: Pages) -> None:
    """Serve /dashboard, its data routes (in the OpenAPI) and plotly.js from the installed package."""
    add_schemas(app, DASHBOARD_VIEW_TYPES)
    plotly_js = str(files("plotly") / "package_data" / "plotly.min.js")
    router = APIRouter(tags=["dashboard"])
    modules = {module.name for module in service.node.app.modules}

    @router.get("/dashboard", include_in_schema=False, response_class=HTMLResponse)
    def dashboard() -> Response:
        page = pages.render("dashboard.html", title="City dashboard", plotly_url=PLOTLY_URL, modules=modules,
                            charging=getattr(service.node, "charging", None) is not None,
                            chart_blocks=DEFAULT_CHART_BLOCKS, chart_days=DEFAULT_CHART_DAYS)
        page.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return page

    @router.get(PLOTLY_URL, include_in_schema=False)
    def plotly() -> Response:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": CACHE_FOREVER})

    @router.get("/dashboard/data/chain", summary="Recent blocks: interval, txs, txs by module; mempool, validators",
                responses=_doc("ChainChartView"))
    def chain(blocks: int = Query(DEFAULT_CHART_BLOCKS, ge=1, le=MAX_CHART_BLOCKS)) -> Response:
        return json_response(chain_chart(service, blocks))

    @router.get("/dashboard/data/validators", summary="The validator set and who signed the recent commits",
                responses=_doc("ValidatorsView", 400))
    def validators(blocks: int = Query(DEFAULT_CHART_BLOCKS, ge=1, le=MAX_CHART_BLOCKS)) -> Response:
        return json_response(validators_chart(service, blocks))

    @router.get("/dashboard/data/charging", summary="Charging sessions ended and energy delivered per day, from "
                "this node's CSMS (404 without one)", responses=_doc("ChargingPerDayView", 400, 404))
    def charging(days: int = Query(DEFAULT_CHART_DAYS, ge=1, le=MAX_CHART_DAYS)) -> Response:
        return json_response(charging_chart(service, days))

    _city_routes(router, service, Tally(service.node.store, lambda m, q, a: service.query(m, q, a).result), modules)
    if "batteries" in modules:
        _battery_routes(router, service)
    app.include_router(router)


def _city_routes(router: APIRouter, service: NodeService, tally: Tally, modules: set[str]) -> None:
    """Devices by kind and payments per day (the event tally), reward programmes (per height)."""
    if "devices" in modules:
        @router.get("/dashboard/data/devices", summary="Devices registered and not decommissioned, by kind",
                    responses=_doc("DevicesByKindView"))
        def devices() -> Response:
            counted = tally.fold()
            return json_response(DevicesByKindView(counted_to=counted, height=service.node.store.last_height(),
                                                   kinds=tally.device_kinds()))

    if "payments" in modules:
        @router.get("/dashboard/data/payments", summary="Per day: vouchers redeemed (chargers: charging) and paid, "
                    "channels opened", responses=_doc("PaymentsPerDayView"))
        def payments(days: int = Query(DEFAULT_CHART_DAYS, ge=1, le=MAX_CHART_DAYS)) -> Response:
            return json_response(payments_chart(tally, service, days))

    if "mobility" in modules:
        programmes = PerHeight(service, partial(rewards_chart, service))

        @router.get("/dashboard/data/rewards", summary="Reward programmes: budget, remaining, claims",
                    responses=_doc("RewardsView"))
        def rewards() -> Response:
            return json_response(programmes.get())


def _battery_routes(router: APIRouter, service: NodeService) -> None:
    """Passports by stage, the end-of-first-life alerts, recycling against the EU targets."""
    alerts, recycling = PerHeight(service, partial(alerts_chart, service)), PerHeight(service, partial(
        recycling_chart, service))

    @router.get("/dashboard/data/batteries", summary="Battery passports by life-cycle stage",
                responses=_doc("BatteryStagesView"))
    def batteries() -> Response:
        stages = service.query("batteries", "stages", {}).result["stages"]
        return json_response(BatteryStagesView(stages=msgspec.convert(stages, dict[str, int])))

    @router.get("/dashboard/data/battery-alerts", summary="Passports near end of first life (SoH alerts), by stage",
                responses=_doc("BatteryAlertsView"))
    def battery_alerts() -> Response:
        return json_response(alerts.get())

    @router.get("/dashboard/data/recycling", summary="Recovered material against Reg. (EU) 2023/1542 Annex XII",
                responses=_doc("RecyclingView"))
    def recycled() -> Response:
        return json_response(recycling.get())
