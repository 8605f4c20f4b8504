"""The city dashboard's charts over a city with devices, charging payments, batteries, recycling and rewards.

One in-process chain (the modules' own test worlds: a market with a charger whose operator declared
itself a charging counterparty, an accredited battery industry, a reward sponsor) is served by the
dashboard's real routes through NodeService; every answer is checked against the ledger read
another way (a state scan, the per-recycler query, the programme records); validators up from solo
and from FinalizeBlock's commit votes; charging per day from a real CSMS's store; the city-wide
device and passport lists. Hostile parameters get a 400 naming the field. Then, in a real headless browser (Debian's chromium through Playwright, `slow`), the same world's
dashboard under uvicorn in a thread: with every request off that origin blocked and recorded, the page
loads with no console error at desktop and phone width, every chart draws from its JSON route (the
axes are the routes' answers), and the first load is at most 1 MB with plotly's bundle cached.
CITYLEDGER_SCREENSHOTS=<folder> keeps dashboard-city.png and dashboard-phone.png there. A live
node's dashboard is checked in tests/test_portal_browser.py.
"""

from __future__ import annotations

import hashlib
import os
import threading
import types
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msgspec
import pytest
import uvicorn
from fastapi import FastAPI

from browser_helpers import chromium, chromium_path, open_page, search_by_keyboard
from test_api_helpers import free_port
from test_batteries import Batteries
from test_identity_fixtures import ALICE, City
from test_payments import Market
from cityledger.api.errors import install_handlers
from cityledger.api.explorer.dashboard import MAX_CHART_BLOCKS, PLOTLY_URL
from cityledger.api.explorer import include_explorer
from cityledger.api.explorer.tally import MAX_CHART_DAYS, Tally
from cityledger.api.metrics import ApiMetrics, read_engine
from cityledger.api.service import NodeService
from cityledger.engines.solo.engine import SoloConfig, SoloEngine
from cityledger.modules.batteries import Collect
from cityledger.modules.batteries import ROLE_RECYCLER
from cityledger.modules.devices import Decommission
from cityledger.modules.devices.handlers import decode_device
from cityledger.modules.devices.keys import DEVICES_PREFIX
from cityledger.modules.mobility import CreateProgramme
from cityledger.node.passports import open_passport_store
from cityledger.offchain.passport.reports import VerifiedReport
from cityledger.offchain.passport.store import ReportBook
from cityledger.sdk.txs import tx_id
from cityledger.wire import (BatteryAlertsView, ChargingPerDayView, DevicesByKindView, PaymentsPerDayView,
                             RecyclingView, RewardsView, ValidatorsView)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class ChainNode:
    """What NodeService reads of a node, over the test world's chain: its store and app, an idle solo
    engine (nothing pending), and a passport store in a folder of its own."""

    def __init__(self, city: City, folder) -> None:
        self.store, self.app = city.ledger.store, city.chain.app
        self.engine = SoloEngine(self.app, SoloConfig(verify_workers=0))
        folder.mkdir()
        self.passports = open_passport_store(folder)
        self.issuers: dict = {}


class World:
    """The city, its market and battery industry, and the dashboard served over it."""

    def __init__(self, folder) -> None:
        self.city = City(folder)
        self.market = Market(self.city)
        self.batteries = Batteries(self.city)
        self.node = ChainNode(self.city, folder / "node")
        self.service = NodeService(self.node, ApiMetrics(lambda: read_engine(self.node)))
        app = FastAPI()
        install_handlers(app)
        include_explorer(app, self.service)
        self.client = TestClient(app)

    def get(self, path: str, kind: type, **params) -> dict:
        """The route's answer, checked to carry exactly the wire Struct's fields."""
        answer = self.client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        assert msgspec.to_builtins(msgspec.json.decode(answer.content, type=kind)) == answer.json()
        return answer.json()


def _charging(world: World) -> None:
    """Day 0: two redemptions by the charger's operator, one by an undeclared payee; day 1: one more."""
    market = world.market
    charger = market.open(market.owner, market.operator, 50_000)
    other = market.open(market.payer, market.payee, 20_000)
    for amount, nonce in ((1_200, 1), (3_000, 2)):
        market.redeem(charger, *market.voucher(market.owner, charger, amount, nonce),
                      payee=market.operator).raise_for_error()
    market.redeem(other, *market.voucher(market.payer, other, 700, 1)).raise_for_error()
    market.next_day()
    market.redeem(charger, *market.voucher(market.owner, charger, 3_500, 3), payee=market.operator).raise_for_error()


def _batteries(world: World) -> dict[str, str]:
    """Passports in service, recycled by two recyclers; a decommissioned meter; SoH alerts in the store."""
    industry = world.batteries
    in_service, _ = industry.in_service(0x22)
    healthy, _ = industry.in_service(0x23)
    waste, _ = industry.register(0x21)
    other_waste, _ = industry.register(0x24)
    industry.send(industry.recycler, Collect(industry.recycler.did, waste)).raise_for_error()
    industry.recycle("W-1", [waste]).raise_for_error()
    second = industry._org("recycler-2", 0x88, ROLE_RECYCLER)
    industry.recycler, first = second, industry.recycler
    industry.send(second, Collect(second.did, other_waste)).raise_for_error()
    industry.recycle("B-7", [other_waste], input_mass_g=100_000, output_mass_g=60_000).raise_for_error()
    meter = industry.device(0x30, "meter", industry.maker)
    industry.send(industry.maker, Decommission(meter)).raise_for_error()
    book = ReportBook(world.node.passports)
    reports = [VerifiedReport(pid, 1, bytes(32), b"{}", alert) for pid, alert in
               ((in_service, True), (healthy, False), (waste, True))]
    book.confirm(book.add_batch(reports).seq, world.city.ledger.height())
    book.add_batch([VerifiedReport(healthy, 2, bytes(32), b"{}", True)])  # stored, not yet committed: not counted
    return {"in_service": in_service, "healthy": healthy, "first": first.did, "second": second.did}


def _rewards(world: World) -> None:
    issuer = world.city.transport_office().did
    sponsor = world.city.chain.accounts[3]
    for budget in (40_000, 90_000):
        world.city.ledger.send([sponsor], [CreateProgramme(
            "driving-score-v1", budget, 60, 100, 10, 500, 2_000, 10, world.city.ledger.height() + 500,
            issuer)]).raise_for_error()


def build_world(folder) -> World:
    """The world with its payments, batteries, programmes, and a resident holding a Resident ID."""
    made = World(folder)
    _charging(made)
    made.ids = _batteries(made)
    _rewards(made)
    made.city.resident(ALICE)  # attribute values that nothing the dashboard serves may hold
    return made


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("dashboard"))


def test_devices_by_kind_match_a_scan_of_the_registry(world):
    answer = world.get("/dashboard/data/devices", DevicesByKindView)
    assert answer["counted_to"] == answer["height"] == world.city.ledger.height()
    scanned = Counter()
    for _, raw in world.city.ledger.store.iter_prefix(DEVICES_PREFIX):
        record = decode_device(raw)
        scanned[record.kind] += record.status == "active"
    kinds = {kind: count for kind, count in answer["kinds"].items() if count}
    assert kinds == {kind: count for kind, count in scanned.items() if count}
    assert answer["kinds"]["meter"] == 0 and answer["kinds"]["battery"] == 4 and answer["kinds"]["charger"] == 1


def test_payments_per_day_split_charging_from_other_payees(world):
    answer = world.get("/dashboard/data/payments", PaymentsPerDayView, days=MAX_CHART_DAYS)
    assert answer["days"] == ["1970-01-01", "1970-01-02"]
    assert answer["redeemed"] == {"charger": [2, 1], "undeclared": [1, 0]}
    assert answer["paid"] == {"charger": [3_000, 500], "undeclared": [700, 0]}
    assert answer["channels_opened"] == [2, 0]
    last = world.get("/dashboard/data/payments", PaymentsPerDayView, days=1)
    assert last["days"] == ["1970-01-02"] and last["redeemed"]["charger"] == [1]


def test_recycling_sums_every_recycler_against_the_targets(world):
    answer = world.get("/dashboard/data/recycling", RecyclingView)
    each = [world.city.ledger.query("/batteries/recycler", did=world.ids[name]) for name in ("first", "second")]
    assert (answer["recyclers"], answer["complete"], answer["batches"], answer["batteries"]) == (2, True, 2, 2)
    assert answer["input_mass_g"] == sum(r["input_mass_g"] for r in each) == 500_000
    assert answer["recycling_efficiency"]["per_mille"] == 350_000 * 1000 // 500_000
    cobalt = answer["material_recovery"]["co"]
    assert cobalt["contained_g"] == sum(r["material_recovery"]["co"]["contained_g"] for r in each)
    assert cobalt["per_mille"] == cobalt["recovered_g"] * 1000 // cobalt["contained_g"]
    assert [(t["per_mille"], t["by"], t["met"]) for t in cobalt["targets"]] == [
        (900, 20271231, cobalt["per_mille"] >= 900), (950, 20311231, cobalt["per_mille"] >= 950)]
    assert answer["material_recovery"]["pb"]["per_mille"] is None  # no lead went in: no verdict
    assert all(t["met"] is None for t in answer["material_recovery"]["pb"]["targets"])


def test_alerts_count_committed_alerts_by_stage_now_and_name_no_passport(world):
    answer = world.get("/dashboard/data/battery-alerts", BatteryAlertsView)
    assert answer["by_stage"] == {"in_service": 1, "recycled": 1} and answer["alerted"] == 2
    assert answer["near_end_of_first_life"] == 1 and answer["complete"] and answer["threshold_percent"] == 80
    body = world.client.get("/dashboard/data/battery-alerts").text
    assert all(passport not in body for passport in (world.ids["in_service"], world.ids["healthy"]))


def test_rewards_list_each_programme_budget_newest_first(world):
    answer = world.get("/dashboard/data/rewards", RewardsView)
    assert answer["count"] == 2
    assert [(p["programme_id"], p["budget"], p["remaining"], p["claims"]) for p in answer["programmes"]] == [
        (2, 90_000, 90_000, 0), (1, 40_000, 40_000, 0)]


def test_the_tally_folds_each_block_once_and_catches_up_in_steps(world, monkeypatch):
    import cityledger.api.explorer.tally as tally_module

    monkeypatch.setattr(tally_module, "MAX_FOLD_BLOCKS", 3)
    reads: list[int] = []

    class Counting:
        def last_height(self):
            return world.node.store.last_height()

        def get_block(self, height):
            reads.append(height)
            return world.node.store.get_block(height)

    tally = Tally(Counting(), lambda m, q, a: world.service.query(m, q, a).result)
    assert tally.fold() == 3 and tally.fold() == 6
    top = world.node.store.last_height()
    while tally.fold() < top:
        pass
    assert reads == list(range(1, top + 1))  # every block read once, in order
    full = world.get("/dashboard/data/devices", DevicesByKindView)["kinds"]
    assert tally.device_kinds() == full


@pytest.mark.parametrize("days", ["0", "-1", str(MAX_CHART_DAYS + 1), "9" * 400, "-" + "9" * 30, "1\n2", "abc",
                                  "0x10", "", "1e3", "\u0661"])
def test_hostile_day_counts_are_400_naming_the_field(world, days):
    answer = world.client.get("/dashboard/data/payments", params={"days": days})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "days"


def test_a_day_count_with_surrounding_whitespace_reads_as_the_number(world):
    # FastAPI's integer parameters strip whitespace (as /dashboard/data/chain's blocks): "1\n" is 1, not echoed.
    padded = world.client.get("/dashboard/data/payments", params={"days": " 1\n"})
    assert padded.status_code == 200 and padded.json() == world.client.get("/dashboard/data/payments?days=1").json()


@pytest.mark.parametrize("path", ["/dashboard/data/devices", "/dashboard/data/recycling",
                                  "/dashboard/data/battery-alerts", "/dashboard/data/rewards"])
def test_routes_without_parameters_ignore_hostile_extra_ones(world, path):
    answer = world.client.get(path, params={"x": "\n" * 10, "before": "-1", "id": "zz" * 5_000})
    assert answer.status_code == 200 and "\n\n" not in answer.text


def test_explorer_lists_programmes_and_proposals_newest_first_with_paging(world):
    page = world.client.get("/explorer/programmes").text
    assert "<h1>Reward programmes</h1>" in page and page.index("90000") < page.index("40000")
    one = world.client.get("/explorer/programmes", params={"id": "1"}).text
    assert "40000" in one and "90000" not in one
    proposals = world.client.get("/explorer/proposals").text
    count = world.city.ledger.query("/governance/proposals")["count"]
    assert count >= 2 and f"<dt>count</dt><dd><span class=\"v\">{count}</span></dd>" in proposals
    assert "approvals" in proposals
    older = world.client.get("/explorer/proposals", params={"before": "2"}).text
    assert "approvals" in older and 'href="/explorer/proposals?before=' not in older


@pytest.mark.parametrize("path, params, status, field", [
    ("/explorer/programmes", {"before": "0"}, 400, "before"),
    ("/explorer/programmes", {"before": "-5"}, 400, "before"),
    ("/explorer/programmes", {"before": "abc"}, 400, "before"),
    ("/explorer/programmes", {"before": str(2**64)}, 400, "before"),
    ("/explorer/programmes", {"before": "1\n2"}, 400, "before"),
    ("/explorer/proposals", {"before": "9" * 300}, 400, "before"),
    ("/explorer/programmes", {"id": "99"}, 404, "id:"),
    ("/explorer/programmes", {"id": "1\n2"}, 400, "id:"),
    ("/explorer/programmes", {"id": "-1"}, 400, "id:"),
    ("/explorer/programmes", {"id": "ff" * 200}, 400, "id:"),
])
def test_hostile_listing_and_lookup_values_are_refused_naming_the_field(world, path, params, status, field):
    answer = world.client.get(path, params=params)
    assert answer.status_code == status, answer.text
    if answer.headers["content-type"].startswith("text/html"):
        assert f'<p role="alert"><span class="v">{field}' in answer.text
    else:
        assert answer.json()["error"]["field"] == field


@pytest.mark.parametrize("before", ["0", "-1", "x", "1\n", "9" * 30, "\u0661"])
def test_new_module_list_queries_refuse_bad_before_naming_it(world, before):
    for path in ("/mobility/programmes", "/governance/proposals"):
        with pytest.raises(ValueError, match="^before: "):
            world.city.ledger.query(path, before=before)


def test_module_list_queries_page_back_to_the_first_record(world):
    proposals = world.city.ledger.query("/governance/proposals")
    ids = [p["id"] for p in proposals["proposals"]]
    assert ids == sorted(ids, reverse=True) and ids[-1] == 1 and proposals["before"] is None
    assert [p["programme_id"] for p in world.city.ledger.query("/mobility/programmes", before="2")["programmes"]] == [1]
    assert world.city.ledger.query("/mobility/programmes", before="1")["programmes"] == []
    everything = world.city.ledger.query("/batteries/recycling")
    assert everything["recyclers"] == 2 and everything["elements"] == ["co", "cu", "li", "ni", "pb"]


DATA_ROUTES = ("/dashboard/data/chain", "/dashboard/data/devices", "/dashboard/data/payments?days=90",
               "/dashboard/data/batteries", "/dashboard/data/battery-alerts", "/dashboard/data/recycling",
               "/dashboard/data/rewards")


def test_nothing_served_holds_a_residents_attribute_values(world):
    paths = ("/dashboard", "/explorer/programmes", "/explorer/proposals", "/explorer/programmes?id=1") + DATA_ROUTES
    answers = [world.client.get(path) for path in paths]
    assert all(answer.status_code == 200 for answer in answers)
    served = "\n".join(answer.text for answer in answers)
    assert "Recovered material against the EU targets" in served and '"charger"' in served
    for name, value in ALICE.items():
        assert str(value) not in served, f"{name} of a resident found in what the dashboard serves"


def test_past_their_bounds_the_alert_and_recycling_answers_say_incomplete(world, monkeypatch):
    import cityledger.api.explorer.dashboard as dashboard
    import cityledger.modules.batteries.queries as queries

    monkeypatch.setattr(dashboard, "MAX_ALERT_PASSPORTS", 1)
    alerts = dashboard.alerts_chart(world.service, world.city.ledger.height())
    assert (alerts.alerted, alerts.complete) == (1, False)
    monkeypatch.setattr(queries, "MAX_QUERY_RECYCLERS", 1)
    recycling = world.city.ledger.query("/batteries/recycling")
    assert (recycling["recyclers"], recycling["complete"], recycling["batches"]) == (1, False, 1)


def _listed(world, slug: str, field: str) -> list[str]:
    """Every id a city-wide explorer list shows, following its "Next page" links."""
    import re

    path, seen = f"/explorer/{slug}", []
    while path:
        page = world.client.get(path)
        assert page.status_code == 200, page.text
        seen += re.findall(rf"<dt>{field}</dt><dd>(?:<a [^>]*>|<span class=\"v\">)([^<]+)<", page.text)
        found = re.search(rf'href="(/explorer/{slug}\?after=[0-9a-f]+)">Next page', page.text)
        path = found.group(1) if found else ""
    return seen


def test_explorer_lists_every_device_and_passport_in_pages(world, monkeypatch):
    import cityledger.modules.paging as paging
    from cityledger.modules.batteries.handlers import decode_passport
    from cityledger.modules.batteries.keys import PASSPORTS_PREFIX

    store = world.city.ledger.store
    devices = sorted(decode_device(raw).did for _, raw in store.iter_prefix(DEVICES_PREFIX))
    passports = sorted(decode_passport(raw).passport for _, raw in store.iter_prefix(PASSPORTS_PREFIX))
    assert len(devices) >= 6 and len(passports) == 4
    page = world.client.get("/explorer/passports").text
    monkeypatch.setattr(paging, "MAX_OWNED_RESULTS", 2)
    assert sorted(_listed(world, "devices", "did")) == devices
    assert sorted(_listed(world, "passports", "passport")) == passports
    assert "Battery passports by id" in page and "vehicle" not in page.split('<section aria-labelledby="record-h"')[1]
    assert all(f'href="/explorer/passports?id={passport}"' in page for passport in passports)  # each its page


@pytest.mark.parametrize("after", ["zz", "abc", "ab cd", "ab\ncd", "ab" * 513, "-1", "\u0661\u0662"])
def test_hostile_list_cursors_are_400_naming_after(world, after):
    for slug in ("devices", "passports"):
        answer = world.client.get(f"/explorer/{slug}", params={"after": after})
        assert answer.status_code == 400 and '<p role="alert"><span class="v">after: ' in answer.text
    for path in ("/devices/list", "/batteries/list"):
        with pytest.raises(ValueError, match="^after: "):
            world.city.ledger.query(path, after=after)


# -- validators up, charging per day ----------------------------------------------------------------

def _address(pub_key_hex: str) -> bytes:
    return hashlib.sha256(bytes.fromhex(pub_key_hex)).digest()[:20]


def test_solo_validators_sign_every_stored_block(world):
    answer = world.get("/dashboard/data/validators", ValidatorsView, blocks=5)
    top = world.city.ledger.height()
    members = world.service.query("governance", "validators", {}).result["validators"]
    assert (answer["engine"], answer["source"], answer["height"]) == ("solo", "solo", top)
    assert answer["heights"] == list(range(top - 4, top + 1)) and answer["up"] == len(members) == 1
    assert answer["signed_power"] == [answer["total_power"]] * 5 == [members[0]["power"]] * 5
    [one] = answer["validators"]
    assert one["address"] == _address(members[0]["pub_key"]).hex().upper()
    assert (one["signed"], one["last_signed"], one["up"]) == (5, top, True)


def _finalize(handler, height: int, votes: list[tuple[bytes, int, bool]]) -> None:
    """FinalizeBlock of `height` through the ABCI handler, carrying the votes on the commit of height - 1."""
    from cityledger.engines.cometbft.proto import abci, types_validator

    flag = {True: types_validator.BLOCK_ID_FLAG_COMMIT, False: types_validator.BLOCK_ID_FLAG_ABSENT}
    handler.process_finalize_block(abci.RequestFinalizeBlock(height=height, decided_last_commit=abci.CommitInfo(
        votes=[abci.VoteInfo(validator=abci.Validator(address=a, power=p), block_id_flag=flag[s])
               for a, p, s in votes])))


def test_cometbft_votes_from_finalize_block_say_who_signed(world, monkeypatch):
    from test_abci_server import KvApp
    from cityledger.engines.cometbft import abci_server
    from cityledger.engines.cometbft.abci_server import RequestHandler
    from cityledger.engines.cometbft.node import CometEngine

    monkeypatch.setattr(abci_server, "MAX_KEPT_COMMITS", 3)
    handler = RequestHandler(KvApp())
    member = _address(world.service.query("governance", "validators", {}).result["validators"][0]["pub_key"])
    outsider = b"\x09" * 20  # a validator no longer in the set: its power counts, it is not listed
    _finalize(handler, 1, [])  # height 1 carries no commit
    for height, signed in ((2, True), (3, True), (4, True), (5, False)):
        _finalize(handler, height, [(member, 10, signed), (outsider, 5, True)])
    engine = object.__new__(CometEngine)  # the engine's reader over this handler (no CometBFT process)
    engine._server = abci_server.AbciServer.__new__(abci_server.AbciServer)
    engine._server.handler = handler
    monkeypatch.setattr(world.node, "engine", engine)
    answer = world.get("/dashboard/data/validators", ValidatorsView, blocks=10)
    assert (answer["engine"], answer["source"], answer["heights"]) == ("cometbft", "votes", [2, 3, 4])  # 3 kept
    assert answer["signed_power"] == [15, 15, 5] and answer["up"] == 0
    assert [(v["signed"], v["last_signed"], v["up"]) for v in answer["validators"]] == [(2, 3, False)]
    assert world.get("/dashboard/data/validators", ValidatorsView, blocks=1)["heights"] == [4]


@pytest.mark.parametrize("blocks", ["0", "-1", str(MAX_CHART_BLOCKS + 1), "9" * 400, "abc", "1\n2", "", "0x10",
                                    "\u0661"])
def test_hostile_block_counts_of_validators_are_400_naming_the_field(world, blocks):
    answer = world.client.get("/dashboard/data/validators", params={"blocks": blocks})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "blocks"


def _transaction(kind: str, transaction_id: str, seq: int, wh: int, minutes: int, token: str | None = None):
    from ocpp.v201 import call as call201

    from test_charging import at, energy

    return call201.TransactionEvent(
        event_type=kind, timestamp=at(minutes), trigger_reason="Authorized" if kind == "Started" else "EVDeparted",
        seq_no=seq, transaction_info={"transaction_id": transaction_id}, meter_value=energy(wh, minutes),
        id_token={"id_token": token, "type": "Central"} if token else None, evse={"id": 1, "connector_id": 1})


def _charge(store) -> str:
    """Three sessions through a real CSMS (OCPP 2.0.1 over WebSockets) writing `store`; the vehicle's idToken."""
    import asyncio

    from test_charging import Station201, World as Csms

    async def scenario():
        async with Csms() as csms:
            csms.csms.store = store
            async with csms.charger(None, "ocpp2.0.1") as ws:
                station = Station201("CP-1", ws)
                loop = asyncio.create_task(station.start())
                for name, start, wh, minutes in (("tx-1", 0, 3_500, 40), ("tx-2", 60, 1_250, 30),
                                                 ("tx-3", 24 * 60, 10_000, 90)):
                    await station.call(_transaction("Started", name, 0, 1_000, start, csms.id_token))
                    await station.call(_transaction("Ended", name, 1, 1_000 + wh, start + minutes))
                loop.cancel()
            return csms.id_token

    # A thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


def test_charging_per_day_comes_from_the_nodes_csms_and_names_nobody(world, tmp_path, monkeypatch):
    from cityledger.offchain.charging.store import CsmsStore

    answer = world.client.get("/dashboard/data/charging")
    # Not a 5xx: no input may get one (test_api_fuzz); a node without [charging] has no such data
    assert answer.status_code == 404 and answer.json()["error"]["field"] == "charging"
    assert "runs no CSMS" in answer.json()["error"]["message"]
    store = CsmsStore(tmp_path / "csms.sqlite")
    token = _charge(store)
    _, sessions = store.load()
    store.save({}, list(sessions.values()))  # an ended session written again is counted once
    monkeypatch.setattr(world.node, "charging", types.SimpleNamespace(store=store), raising=False)
    answer = world.get("/dashboard/data/charging", ChargingPerDayView, days=MAX_CHART_DAYS)
    assert answer == {"days": ["2026-01-01", "2026-01-02"], "sessions": [2, 1], "energy_wh": [4_750, 10_000]}
    assert world.get("/dashboard/data/charging", ChargingPerDayView, days=1)["days"] == ["2026-01-02"]
    body = world.client.get("/dashboard/data/charging").text
    assert all(secret not in body for secret in (token, "tx-1", "CP-1"))
    page = world.client.get("/dashboard").text
    assert 'data-charging="yes"' in page and 'id="c-energy"' in page
    for name in ("tx-1", "tx-2"):
        store.delete_session(name)  # redeemed on chain: the per-day figures stay
    assert world.get("/dashboard/data/charging", ChargingPerDayView)["sessions"] == [2, 1]
    store.close()


@pytest.mark.parametrize("days", ["0", "-1", str(MAX_CHART_DAYS + 1), "9" * 400, "abc", "1\n2", "", "\u0661"])
def test_hostile_day_counts_of_charging_are_400_naming_the_field(world, days):
    answer = world.client.get("/dashboard/data/charging", params={"days": days})
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "days"


# -- in the browser ---------------------------------------------------------------------------------

CHARTS = ("c-interval", "c-txs", "c-modules", "c-validators", "c-energy", "c-devices", "c-charging", "c-paid",
          "c-stages", "c-alerts", "c-recovery", "c-rewards", "c-claims")
PHONE_WIDTH = 375
MAX_FIRST_LOAD_BYTES = 1_000_000  # the bound on a page's first load, plotly's bundle cached
START_GUARD_S = 120  # a hang guard for uvicorn's start on a loaded machine, not a speed bound


@pytest.fixture(scope="module")
def served(world):
    """The world's dashboard under uvicorn in a thread, for the browser."""
    chromium_path()  # skip (or fail in CI) when the browser is missing
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
    del world.url
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(served):
    with chromium() as launched:
        yield launched


def wait_for_charts(page) -> None:
    for chart in CHARTS:
        page.wait_for_selector(f'#{chart}[data-drawn="yes"] svg.main-svg')


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, PHONE_WIDTH])
def test_every_chart_draws_its_route_with_no_console_error(served, browser, width, csms_store, monkeypatch):
    monkeypatch.setattr(served.node, "charging", types.SimpleNamespace(store=csms_store), raising=False)
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


@pytest.mark.slow
def test_first_load_weighs_at_most_1_mb_with_plotly_cached(served, browser, csms_store, monkeypatch):
    monkeypatch.setattr(served.node, "charging", types.SimpleNamespace(store=csms_store), raising=False)
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


@pytest.mark.slow
def test_search_from_the_keyboard_finds_block_tx_address_did_and_passport(served, browser):
    store = served.node.store
    height = next(h for h in range(store.last_height(), 0, -1) if store.get_block(h).txs)
    committed = tx_id(store.get_block(height).txs[0])
    address = "city" + served.city.chain.accounts[3].address().hex()
    passport, did = served.ids["in_service"], served.ids["first"]
    cases = [(str(height), f"/explorer/block/{height}", f"Block {height}", None),
             (committed, f"/explorer/tx/{committed}", "Transaction", committed),
             (address, f"/explorer/account/{address}", "Account", address),
             (did, "/explorer/dids", "DIDs", did),
             (passport, "/explorer/passports", "Battery passports", passport)]
    page, watch = open_page(browser, served.url)
    for text, path, heading, shown in cases:
        page.goto(served.url + "/")
        search_by_keyboard(page, text)
        assert page.url.startswith(served.url + path), (text, page.url)
        assert page.locator("h1").inner_text().startswith(heading), (text, page.locator("h1").inner_text())
        assert shown is None or shown in page.locator("main").inner_text(), text
    assert "in_service" in page.locator("main").inner_text()  # the passport's record: its stage on chain
    assert watch.console_errors == [] and watch.outside_requests == []
    page.context.close()


@pytest.fixture(scope="module")
def csms_store(tmp_path_factory):
    """A CSMS store holding three sessions over two days, run through a real CSMS."""
    from cityledger.offchain.charging.store import CsmsStore

    store = CsmsStore(tmp_path_factory.mktemp("csms") / "csms.sqlite")
    _charge(store)
    yield store
    store.close()


@pytest.mark.slow
def test_energy_and_validator_charts_draw_on_a_node_with_a_csms(served, browser, csms_store, monkeypatch):
    monkeypatch.setattr(served.node, "charging", types.SimpleNamespace(store=csms_store), raising=False)
    page, watch = open_page(browser, served.url, width=PHONE_WIDTH)
    page.goto(served.url + "/dashboard")
    for chart in ("c-energy", "c-validators"):
        page.wait_for_selector(f'#{chart}[data-drawn="yes"] svg.main-svg')
    assert page.locator("#c-energy .xtick text").all_text_contents() == ["2026-01-01", "2026-01-02"]
    assert page.locator("#c-energy .legendtext").all_text_contents() == ["sessions", "kWh"]
    assert page.locator("#d-validators").inner_text() == "1 of 1"
    assert page.locator("#d-signing").inner_text().startswith("Solo engine")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0 and watch.clean(), (overflow, watch)
    page.context.close()
