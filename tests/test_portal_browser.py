"""The portal in a real headless browser (Debian's chromium through Playwright), on a live node.

A node runs under uvicorn in a thread with the ID office publishing its Resident ID and two residents
holding credentials, a governance proposal and a few transfers on the chain. In Chromium, with
every request that leaves the node's origin blocked and recorded: /docs renders the API's
operations; every explorer page loads without a console error at desktop width and at 375 px;
search is driven from the keyboard; a tx submitted through the SDK appears in the block list
without a reload. A crawl of the explorer's HTML finds none of the residents' attribute values.
(The resident's own wallet page has its tests in test_wallet_ui_browser.py.)

CITYLEDGER_SCREENSHOTS=<folder> keeps the screenshots there (docs/screenshots is made this way).
"""

from __future__ import annotations

import os
import re
from collections import deque
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from browser_helpers import chromium, chromium_path, open_page, search_by_keyboard
from test_api_helpers import LiveServer, make_node
from test_identity_fixtures import fast_cred_defs
from cityledger import sdk
from cityledger.api.explorer.dashboard import PLOTLY_URL
from cityledger.core.keys import PrivateKey
from cityledger.modules.governance import ParamChange
from cityledger.offchain.identity import RESIDENT_ID
from cityledger.sdk import Client, IdentityClient

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# A hang guard, not a speed bound (timed assertions do not belong in tests): the page polls every
# POLL_MS, so a committed tx shows within a poll and a block; `bench portal` measures it.
LIVE_TIMEOUT_MS = 30_000
PHONE_WIDTH = 375
MAX_CRAWL_PAGES = 400
MAX_FIRST_LOAD_BYTES = 1_000_000  # the bound on a page's first load, plotly's bundle cached
CHARTS = ("c-interval", "c-txs", "c-modules", "c-validators", "c-devices", "c-charging", "c-paid", "c-stages",
          "c-alerts", "c-recovery", "c-rewards", "c-claims")
RESIDENTS = [
    {"name": "Quirina Portalova", "birth_date": 19771231, "district": "Zederwinkel", "resident_since": 20190707,
     "id_number": "PX-7730001"},
    {"name": "Ottokar Explorski", "birth_date": 19650214, "district": "Lindenquell", "resident_since": 20210315,
     "id_number": "PX-7730002"},
]


class City:
    """The live node and what the tests look for on it."""

    def __init__(self, tn, server) -> None:
        self.tn, self.url = tn, server.url
        self.client = Client(server.url)
        self.public = IdentityClient(server.url)
        by_folder = {item["folder"]: item["did"] for item in self.public.list_issuers()}
        self.id_did = by_folder["id-office"]
        token = (tn.home / "issuers" / "id-office" / "token").read_text().strip()
        self.id_office = IdentityClient(server.url, token=token)
        self.tx_ids: list[str] = []

    def submit(self, tx: bytes) -> str:
        result = self.client.submit(tx, wait=True)
        assert result.result is not None and result.result.code == 0, result
        self.tx_ids.append(result.tx_id)
        return result.tx_id

    def transfer(self, amount: int) -> str:
        nonce = self.client.get_nonce(self.tn.alice.address())
        to = PrivateKey.generate().address()
        return self.submit(sdk.transfer(self.tn.chain_id, self.tn.alice, nonce, to, amount))


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    chromium_path()  # skip (or fail in CI) before starting anything when the browser is missing
    folder = tmp_path_factory.mktemp("portal")
    tn = make_node(folder)
    with LiveServer(tn.node) as server, fast_cred_defs():
        town = City(tn, server)
        town.folder = folder
        town.cred_def_id = town.id_office.publish(town.id_did, RESIDENT_ID)["cred_def_id"]
        for values in RESIDENTS:
            wallet = town.public.open_wallet(folder / f"{values['id_number']}.wallet", "pw", create=True,
                                             tails_cache=folder / "tails")
            offer = town.id_office.create_offer(town.id_did, RESIDENT_ID, values, values["id_number"])
            town.public.obtain_credential(wallet, offer)
        town.proposal_tx = town.submit(sdk.propose(tn.chain_id, tn.bob, town.client.get_nonce(tn.bob.address()),
                                                   ParamChange("bank.max_outputs", 12)))
        town.transfer(5)
        yield town
        town.client.close()


@pytest.fixture(scope="module")
def browser(city):
    with chromium() as launched:
        yield launched


def explorer_paths(city: City) -> list[str]:
    """One URL of every kind of explorer page, each showing a record that exists."""
    address = "city" + city.tn.alice.address().hex()
    return ["/", "/?before=2", "/explorer/block/1", f"/explorer/tx/{city.tx_ids[-1]}",
            f"/explorer/tx/{city.proposal_tx}", f"/explorer/account/{address}", f"/explorer/dids?id={city.id_did}",
            "/explorer/issuers", f"/explorer/cred-defs?id={city.cred_def_id}", "/explorer/proposals?id=1",
            "/explorer/devices", "/explorer/channels", "/explorer/passports", "/explorer/programmes",
            "/explorer/proposals", "/search?q=no-such-thing", "/dashboard"]


def test_docs_list_the_api_operations_with_the_network_cut_off(city, browser):
    spec = httpx.get(city.url + "/openapi.json").json()
    operations = [(method, path) for path, item in spec["paths"].items() for method in item]
    page, watch = open_page(browser, city.url)
    page.goto(city.url + "/docs")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() == len(operations)
    assert page.get_by_text("Submit one signed tx").count() >= 1
    assert watch.outside_requests == [] and watch.console_errors == []
    page.context.close()


@pytest.mark.parametrize("width", [1280, PHONE_WIDTH])
def test_every_explorer_page_loads_clean_at_desktop_and_phone_width(city, browser, width):
    page, watch = open_page(browser, city.url, width=width)
    for path in explorer_paths(city):
        page.goto(city.url + path)
        facts = page.evaluate("""() => ({
            title: document.title, h1: document.querySelectorAll('h1').length,
            unlabelled: [...document.querySelectorAll('input, select, textarea')]
                .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).length,
            overflow: document.documentElement.scrollWidth - window.innerWidth,
            wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth)
                .slice(-3).map(e => e.tagName + ' ' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' ' + (e.textContent || '').slice(0, 60))})""")
        assert facts["title"].endswith("cityledger explorer") and facts["h1"] == 1, (path, facts)
        assert facts["unlabelled"] == 0 and facts["overflow"] <= 0, (path, facts["overflow"], facts["wide"])
    assert watch.console_errors == [] and watch.outside_requests == []
    page.context.close()


def test_each_first_load_weighs_at_most_1_mb_with_plotly_cached(city, browser):
    page, watch = open_page(browser, city.url)
    loaded: dict[str, int] = {}
    page.on("requestfinished", lambda request: loaded.__setitem__(request.url, request.sizes()["responseBodySize"]))
    for path in explorer_paths(city):
        loaded.clear()
        page.goto(city.url + path, wait_until="networkidle")
        weight = sum(size for url, size in loaded.items() if not url.endswith(PLOTLY_URL))
        assert 0 < weight <= MAX_FIRST_LOAD_BYTES, (path, weight)
    assert watch.clean()
    page.context.close()


def test_dashboard_charts_render_from_their_json_routes(city, browser):
    page, watch = open_page(browser, city.url)
    page.goto(city.url + "/dashboard")
    for chart in CHARTS:
        page.wait_for_selector(f'#{chart}[data-drawn="yes"] svg.main-svg')
    modules = city.client.chain_chart(100).txs_by_module
    assert {"bank", "governance"} <= set(modules)
    bars = page.locator("#c-modules .xtick text").all_text_contents()
    assert bars == list(modules)
    page.wait_for_selector('#c-validators[data-drawn="yes"] svg.main-svg')
    assert page.locator("#d-validators").inner_text() == "1 of 1"  # solo: its one validator signs every block
    assert watch.console_errors == [] and watch.outside_requests == []
    page.context.close()


def test_search_from_the_keyboard_finds_block_tx_address_and_did(city, browser):
    page, watch = open_page(browser, city.url)
    address = "city" + city.tn.alice.address().hex()
    tx_id = city.tx_ids[-1]
    cases = [("2", "/explorer/block/2", "Block 2"), (tx_id, f"/explorer/tx/{tx_id}", "Transaction"),
             (address, f"/explorer/account/{address}", "Account"), (city.id_did, "/explorer/dids", "DIDs")]
    for text, path, heading in cases:
        page.goto(city.url + "/")
        search_by_keyboard(page, text)
        assert page.url.startswith(city.url + path), (text, page.url)
        assert page.locator("h1").inner_text().startswith(heading)
    assert city.id_did in page.locator("main").inner_text()  # the DID's document
    assert watch.console_errors == [] and watch.outside_requests == []
    page.context.close()


def test_a_tx_submitted_through_the_sdk_appears_without_a_reload(city, browser):
    page, watch = open_page(browser, city.url)
    page.goto(city.url + "/")
    page.evaluate("window.sameDocument = true")
    tx_id = city.transfer(9)
    page.wait_for_selector(f'#blocks a[href="/explorer/tx/{tx_id}"]', timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.sameDocument === true")  # no navigation happened
    assert watch.console_errors == [] and watch.outside_requests == []
    page.context.close()


def crawl(url: str, start: list[str]) -> dict[str, str]:
    """The HTML of every explorer page reachable from `start` (links under / on the same origin)."""
    pages: dict[str, str] = {}
    queue = deque(start)
    with httpx.Client(base_url=url) as client:
        while queue and len(pages) < MAX_CRAWL_PAGES:
            path = queue.popleft()
            if path in pages:
                continue
            answer = client.get(path)
            pages[path] = answer.text
            if not answer.headers.get("content-type", "").startswith("text/html"):
                continue
            for link in re.findall(r'href="(/[^"]*)"', answer.text):
                link = urljoin("/", link.replace("&amp;", "&"))
                if not link.startswith(("/docs", "/explorer/static")) and link not in pages:
                    queue.append(link)
    return pages


def test_explorer_html_holds_none_of_the_residents_attribute_values(city):
    height = city.tn.node.store.last_height()
    start = ["/"] + [f"/explorer/block/{h}" for h in range(1, height + 1)]
    start += [f"/explorer/tx/{tx_id}" for tx_id in city.tx_ids] + explorer_paths(city)
    pages = crawl(city.url, start)
    html = "\n".join(pages.values())
    assert city.id_did in html and city.cred_def_id in html  # the ledger's identity records are shown
    for resident in RESIDENTS:
        for name, value in resident.items():
            assert str(value) not in html, f"{name} of a resident found in the explorer"


def test_screenshots_of_the_explorer(city, browser, tmp_path):
    folder = Path(os.environ.get("CITYLEDGER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shots = [("explorer-blocks.png", "/", 1280), ("explorer-tx.png", f"/explorer/tx/{city.proposal_tx}", 1280),
             ("explorer-phone.png", "/", PHONE_WIDTH), ("dashboard.png", "/dashboard", 1280)]
    for name, path, width in shots:
        page, watch = open_page(browser, city.url, width=width)
        page.goto(city.url + path)
        if path == "/dashboard":
            page.wait_for_selector('#c-stages[data-drawn="yes"] svg.main-svg')
        page.screenshot(path=str(folder / name), full_page=width != PHONE_WIDTH)
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and watch.clean()
        page.context.close()
