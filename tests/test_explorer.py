"""The explorer's pages and the offline API reference, in-process (FastAPI's TestClient).

The browser-level checks (console errors, live updates, the network cut off) are in
tests/test_portal_browser.py; these check what the HTML holds and how bad input is answered.
"""

from __future__ import annotations

import re
import warnings

import pytest

from cityledger.api.explorer import SECTIONS
from cityledger.api.explorer.dashboard import MAX_CHART_BLOCKS, PLOTLY_URL
from cityledger.api.explorer.pages import PAGE_BLOCKS
from cityledger.api.explorer.sections import available
from cityledger.core.hashing import compute_tx_id
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import build_tx
from cityledger.modules.bank import Transfer

from test_api_helpers import make_node

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cityledger.api import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PASSPORT = "3f1c1b7e-5a0e-4c1e-9b9a-2d7c4f0e8a11"
_ATTRIBUTE_URL = re.compile(r'(?:src|href|action)="([^"]*)"')


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """A node with one transfer in each of PAGE_BLOCKS + 5 blocks, and a client of its API."""
    tn = make_node(tmp_path_factory.mktemp("explorer"))
    with TestClient(create_app(tn.node)) as client:
        dest = PrivateKey.generate().address()
        txs = [build_tx(tn.chain_id, [tn.alice], nonce, [Transfer(dest, 7)]) for nonce in range(PAGE_BLOCKS + 5)]
        for tx in txs:  # the solo engine makes no empty blocks: one tx each
            assert client.post("/txs", json={"tx": tx.hex(), "encoding": "hex"}).status_code == 200
            assert tn.node.engine.produce_block() is not None
        client.tn, client.dest, client.tx_id = tn, dest, compute_tx_id(txs[0]).hex()
        yield client
    tn.node.store.close()


def main_of(html: str) -> str:
    return html.split('<main id="main">', 1)[1].split("</main>", 1)[0]


def test_block_list_is_newest_first_and_paginated(explorer):
    latest = explorer.tn.node.store.last_height()
    page = explorer.get("/")
    assert page.status_code == 200 and "<title>Blocks · cityledger explorer</title>" in page.text
    heights = [int(h) for h in re.findall(r'<td><a href="/explorer/block/(\d+)">', page.text)]
    assert heights == list(range(latest, latest - PAGE_BLOCKS, -1))
    older = heights[-1]
    assert f'href="/?before={older}"' in page.text and 'data-live="on"' in page.text
    second = explorer.get(f"/?before={older}").text
    rest = [int(h) for h in re.findall(r'<td><a href="/explorer/block/(\d+)">', second)]
    assert rest == list(range(older - 1, 0, -1)) and 'data-live="off"' in second and "?before=" not in second
    assert explorer.tx_id in second  # block 1 lists its transfer


def test_block_tx_and_account_pages_decode_the_ledger(explorer):
    block = main_of(explorer.get("/explorer/block/1").text)
    assert f'/explorer/tx/{explorer.tx_id}' in block and "ok (code 0)" in block
    tx = main_of(explorer.get(f"/explorer/tx/{explorer.tx_id}").text)
    assert "committed" in tx and "bank/1.0/transfer" in tx and "<strong>transfer</strong>" in tx
    assert explorer.dest.hex() in tx and f'/explorer/account/city{explorer.tn.alice.address().hex()}' in tx
    account = main_of(explorer.get(f"/explorer/account/city{explorer.dest.hex()}").text)
    assert f"<dd>{7 * (PAGE_BLOCKS + 5)} micro-credits</dd>" in account
    unknown = main_of(explorer.get(f"/explorer/tx/{'ab' * 32}").text)
    assert "<dd>unknown</dd>" in unknown


@pytest.mark.parametrize("text, target", [
    ("1", "/explorer/block/1"),
    ("0042", "/explorer/block/42"),
    ("AB" * 32, "/explorer/tx/" + "ab" * 32),
    ("city" + "0a" * 20, "/explorer/account/city" + "0a" * 20),
    ("did:city:abc123", "/explorer/dids?id=did:city:abc123"),
    (PASSPORT, f"/explorer/passports?id={PASSPORT}"),
])
def test_search_sends_each_kind_of_id_to_its_page(explorer, text, target):
    answer = explorer.get("/search", params={"q": f" {text} "}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == target


def test_search_without_a_match_says_so_and_escapes_the_input(explorer):
    answer = explorer.get("/search", params={"q": "<script>alert(1)</script>"})
    assert answer.status_code == 200 and "Nothing on the ledger matches" in answer.text
    assert "<script>alert" not in answer.text and "&lt;script&gt;" in answer.text


@pytest.mark.parametrize("path, status, field", [
    ("/explorer/tx/xyz", 400, "tx_id:"),
    ("/explorer/block/999999", 404, "height:"),
    ("/explorer/account/nobody", 400, "address:"),
    ("/explorer/proposals?id=abc", 400, "id:"),
    ("/explorer/proposals?id=7", 404, "id:"),
    ("/explorer/channels?id=" + "9" * 300, 400, "id:"),
    ("/explorer/passports?id=" + PASSPORT, 404, "passport:"),
    ("/explorer/no-such-section", 404, "slug:"),
])
def test_bad_or_unknown_ids_get_an_error_page_naming_the_field(explorer, path, status, field):
    answer = explorer.get(path)
    assert answer.status_code == status and answer.headers["content-type"].startswith("text/html")
    assert f'<p role="alert"><span class="v">{field}' in answer.text


def test_sections_list_issuers_and_follow_the_node_modules(explorer):
    issuers = main_of(explorer.get("/explorer/issuers").text)
    assert "accreditations" in issuers and "did:city:" in issuers and "/explorer/dids?id=did:city:" in issuers
    names = [section.slug for section in available(["identity", "governance"])]
    assert names == ["dids", "issuers", "cred-defs", "schemas", "consortium", "validators", "proposals"]
    members = main_of(explorer.get("/explorer/consortium").text)
    assert f"/explorer/account/city{explorer.tn.alice.address().hex()}" in members
    home = explorer.get("/").text
    for section in SECTIONS:
        assert f'href="/explorer/{section.slug}"' in home
        assert explorer.get(f"/explorer/{section.slug}").status_code == 200


def test_passport_section_leaves_out_the_vehicle():
    passports = next(section for section in SECTIONS if section.slug == "passports")
    shown = passports.public({"passport": PASSPORT, "vehicle": "WVW-123", "stage": "first-life"})
    assert shown == {"passport": PASSPORT, "stage": "first-life"}


def test_pages_load_nothing_from_another_origin(explorer):
    for path in ("/", "/explorer/block/1", f"/explorer/tx/{explorer.tx_id}", "/explorer/issuers", "/docs",
                 "/dashboard"):
        html = explorer.get(path).text
        urls = _ATTRIBUTE_URL.findall(html) + re.findall(r'url: ?["\']([^"\']+)', html)
        assert urls and all(url.startswith(("/", "#", "data:")) for url in urls), (path, urls)
    assert explorer.get("/").headers["content-security-policy"].startswith("default-src 'self'")


def test_docs_assets_come_from_the_installed_package(explorer):
    docs = explorer.get("/docs").text
    assert '"/docs-assets/swagger-ui-bundle.js"' in docs and "cdn." not in docs
    assert explorer.get("/redoc").status_code == 404  # ReDoc's bundle would fetch its logo from a CDN
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        answer = explorer.get(f"/docs-assets/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 100_000
    assert "/" not in explorer.get("/openapi.json").json()["paths"]  # the pages stay out of the API


def test_dashboard_chain_data_counts_the_blocks_txs_and_modules(explorer):
    latest = explorer.tn.node.store.last_height()
    chain = explorer.get("/dashboard/data/chain", params={"blocks": 10}).json()
    assert chain["heights"] == list(range(latest - 9, latest + 1)) and chain["to_height"] == latest
    assert chain["txs"] == [1] * 10 and chain["txs_by_module"] == {"bank": 10}
    assert len(chain["interval_ms"]) == 10 and all(gap >= 0 for gap in chain["interval_ms"])
    assert chain["validators"] >= 1 and chain["mempool_size"] == 0
    everything = explorer.get("/dashboard/data/chain", params={"blocks": MAX_CHART_BLOCKS}).json()
    assert everything["heights"][0] == 1 and len(everything["interval_ms"]) == latest
    assert everything["txs_by_module"] == {"bank": latest}


@pytest.mark.parametrize("blocks", ["0", str(MAX_CHART_BLOCKS + 1), "x"])
def test_invalid_dashboard_block_counts_are_refused_naming_the_field(explorer, blocks):
    answer = explorer.get("/dashboard/data/chain", params={"blocks": blocks})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "blocks"


def test_dashboard_routes_are_in_the_openapi_and_plotly_is_served_by_the_node(explorer):
    paths = explorer.get("/openapi.json").json()["paths"]
    assert {"/dashboard/data/chain", "/dashboard/data/batteries", "/dashboard/data/devices", "/dashboard/data/payments",
            "/dashboard/data/battery-alerts", "/dashboard/data/recycling", "/dashboard/data/rewards"} <= set(paths)
    empty = explorer.get("/dashboard/data/recycling").json()
    assert (empty["recyclers"], empty["material_recovery"]["li"]["per_mille"]) == (0, None)
    assert explorer.get("/dashboard/data/rewards").json()["programmes"] == []
    stages = explorer.get("/dashboard/data/batteries").json()["stages"]
    assert "manufactured" in stages and set(stages.values()) == {0}
    page = explorer.get("/dashboard").text
    assert f'src="{PLOTLY_URL}"' in page and 'id="c-modules"' in page
    for chart in ("c-devices", "c-charging", "c-paid", "c-stages", "c-alerts", "c-recovery", "c-rewards", "c-claims"):
        assert f'id="{chart}"' in page
    bundle = explorer.get(PLOTLY_URL)
    assert bundle.status_code == 200 and b"plotly" in bundle.content[:2000].lower()
    assert "immutable" in bundle.headers["cache-control"]


def test_bench_portal_builds_a_chain_and_times_every_page(tmp_path):
    from cityledger.tools import bench_portal

    result = bench_portal.run(PAGE_BLOCKS + 1, tmp_path / "home", samples=2)
    assert result["blocks"] == PAGE_BLOCKS + 1 and result["build_s"] > 0
    for name in ("list_newest_ms", "list_middle_ms", "list_oldest_ms", "block_page_ms"):
        assert 0 < result[name]["p50"] <= result[name]["p95"], name
    assert result["ratio_newest_to_oldest"] > 0 and 0 < result["first_load_bytes"] < bench_portal.MAX_FIRST_LOAD_BYTES
    again = bench_portal.run(PAGE_BLOCKS + 1, tmp_path / "home", samples=1)  # the chain is reused, not rebuilt
    assert again["blocks"] == PAGE_BLOCKS + 1 and again["build_s"] < result["build_s"]
