"""The city dashboard in a real headless browser (Debian's chromium through Playwright), over a city with data.

tests/test_dashboard.py's world (devices, charging payments over two days, batteries in service and
recycled by two recyclers, SoH alerts, two reward programmes) is served by the dashboard's own routes
under uvicorn in a thread. In Chromium, with every request off that origin blocked and recorded: the
page loads with no console error at desktop and phone width, every chart draws from its JSON route
(the axes are the routes' answers), and the first load is at most 1 MB with plotly's bundle cached.
(That nothing served holds a resident's attribute value is checked in-process, tests/test_dashboard.py.)
CITYLEDGER_SCREENSHOTS=<folder> keeps dashboard-city.png and dashboard-phone.png there.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from browser_helpers import chromium, chromium_path, open_page
from test_api_helpers import free_port
from test_dashboard import World, build_world
from cityledger.api.explorer.dashboard import PLOTLY_URL

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

CHARTS = ("c-interval", "c-txs", "c-modules", "c-devices", "c-charging", "c-paid", "c-stages", "c-alerts",
          "c-recovery", "c-rewards", "c-claims")
PHONE_WIDTH = 375
MAX_FIRST_LOAD_BYTES = 1_000_000  # the bound on a page's first load, plotly's bundle cached
START_GUARD_S = 120  # a hang guard for uvicorn's start on a loaded machine, not a speed bound


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    chromium_path()  # skip (or fail in CI) before building anything when the browser is missing
    world: World = build_world(tmp_path_factory.mktemp("dashboard-browser"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(world.client.app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="dashboard-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_GUARD_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard's server did not start")
        time.sleep(0.01)
    world.url = f"http://127.0.0.1:{port}"
    yield world
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(served):
    with chromium() as launched:
        yield launched


def wait_for_charts(page) -> None:
    for chart in CHARTS:
        page.wait_for_selector(f'#{chart}[data-drawn="yes"] svg.main-svg')


@pytest.mark.parametrize("width", [1280, PHONE_WIDTH])
def test_every_chart_draws_its_route_with_no_console_error(served, browser, width):
    page, watch = open_page(browser, served.url, width=width)
    page.goto(served.url + "/dashboard")
    wait_for_charts(page)
    kinds = httpx.get(served.url + "/dashboard/data/devices").json()["kinds"]
    assert page.locator("#c-devices .xtick text").all_text_contents() == list(kinds)
    recycling = httpx.get(served.url + "/dashboard/data/recycling").json()
    assert page.locator("#c-recovery .xtick text").all_text_contents() == list(recycling["material_recovery"])
    assert page.locator("#c-recovery .legendtext").all_text_contents() == [
        "recovered", "target by end-2027", "target by end-2031"]
    assert page.locator("#c-rewards .xtick text").all_text_contents() == ["#2", "#1"]
    assert set(page.locator("#c-charging .legendtext").all_text_contents()) == {
        "charger", "undeclared", "channels opened"}
    assert page.locator("#d-alerts").inner_text().startswith("1 in first life (of 2 alerted)")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0 and watch.console_errors == [] and watch.outside_requests == []
    shots = os.environ.get("CITYLEDGER_SCREENSHOTS")
    if shots:
        name = "dashboard-city.png" if width != PHONE_WIDTH else "dashboard-phone.png"
        page.screenshot(path=str(Path(shots) / name), full_page=True)
        assert (Path(shots) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.context.close()


def test_first_load_weighs_at_most_1_mb_with_plotly_cached(served, browser):
    page, watch = open_page(browser, served.url)
    loaded: dict[str, int] = {}
    page.on("requestfinished", lambda request: loaded.__setitem__(request.url, request.sizes()["responseBodySize"]))
    page.goto(served.url + "/dashboard", wait_until="networkidle")
    wait_for_charts(page)
    weight = sum(size for url, size in loaded.items() if not url.endswith(PLOTLY_URL))
    assert any(url.endswith("/dashboard/data/recycling") for url in loaded)
    assert 0 < weight <= MAX_FIRST_LOAD_BYTES, weight
    assert watch.clean()
    page.context.close()
