"""The city dashboard (/dashboard): plotly charts over JSON routes that are part of the REST API.

Each chart's data is one route under /dashboard/data/, in the OpenAPI document with its wire
Struct, so a consortium's own tools read the same figures. The charts are drawn by plotly.js from the
installed `plotly` package, served by the node under a versioned URL (no CDN, cached by browsers).
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import version
from importlib.resources import files

import msgspec
from fastapi import APIRouter, FastAPI, Query
from starlette.responses import FileResponse, HTMLResponse, Response

from ...core.errors import TxError
from ...wire.dashboard import DASHBOARD_VIEW_TYPES, BatteryStagesView, ChainChartView
from ..codec import json_response
from ..routes.common import add_schemas
from ..service import NodeService
from .pages import Pages

DEFAULT_CHART_BLOCKS = 100
MAX_CHART_BLOCKS = 500  # blocks behind one chain chart: each is one indexed read and its txs' decoding
PLOTLY_VERSION = version("plotly")
PLOTLY_URL = f"/dashboard/plotly-{PLOTLY_VERSION}.min.js"
# plotly.js adds <style> elements and draws into blob/data images; nothing leaves the node's origin.
DASHBOARD_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                 "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
CACHE_FOREVER = "public, max-age=31536000, immutable"  # the URL changes with plotly's version


def _doc(view: str) -> dict:
    return {200: {"description": "OK", "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{view}"}}}}}


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


def include_dashboard(app: FastAPI, service: NodeService, pages: Pages) -> None:
    """Serve /dashboard, its data routes (in the OpenAPI) and plotly.js from the installed package."""
    add_schemas(app, DASHBOARD_VIEW_TYPES)
    plotly_js = str(files("plotly") / "package_data" / "plotly.min.js")
    router = APIRouter(tags=["dashboard"])
    has_batteries = "batteries" in {module.name for module in service.node.app.modules}

    @router.get("/dashboard", include_in_schema=False, response_class=HTMLResponse)
    def dashboard() -> Response:
        page = pages.render("dashboard.html", title="City dashboard", plotly_url=PLOTLY_URL,
                            has_batteries=has_batteries, chart_blocks=DEFAULT_CHART_BLOCKS)
        page.headers["Content-Security-Policy"] = DASHBOARD_CSP
        return page

    @router.get(PLOTLY_URL, include_in_schema=False)
    def plotly() -> Response:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": CACHE_FOREVER})

    @router.get("/dashboard/data/chain", summary="Recent blocks: interval, txs, txs by module; mempool, validators",
                responses=_doc("ChainChartView"))
    def chain(blocks: int = Query(DEFAULT_CHART_BLOCKS, ge=1, le=MAX_CHART_BLOCKS)) -> Response:
        return json_response(chain_chart(service, blocks))

    if has_batteries:
        @router.get("/dashboard/data/batteries", summary="Battery passports by life-cycle stage",
                    responses=_doc("BatteryStagesView"))
        def batteries() -> Response:
            stages = service.query("batteries", "stages", {}).result["stages"]
            return json_response(BatteryStagesView(stages=msgspec.convert(stages, dict[str, int])))

    app.include_router(router)
