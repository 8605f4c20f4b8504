"""The resident's own page (`cityledger wallet ui`) in headless Chromium, on a live node.

A resident's wallet holds a Resident ID and derived three pseudonymous accounts. Through them the
resident bound a registered car (with a spending policy), opened a payment channel, registered the
car's data set and granted a consent over it, and enrolled in a driving-reward programme and was
paid for a proven trip. Unlocked by typing the passphrase, the page shows each of these, the
access-log note of a node without the vault service, and it reads at 375 px; a foreign Origin is
still refused. CITYLEDGER_SCREENSHOTS=<folder> keeps the screenshots (docs/screenshots/wallet*.png).
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from browser_helpers import chromium, chromium_path, open_page
from helpers import CHAIN_ID
from mobility_fixtures import OFFICE_SECRET, PSEUDONYM, stored_claims
from test_api_helpers import LiveServer, free_port
from test_identity_fixtures import TODAY, fast_cred_defs
from cityledger import sdk
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.consent import GrantConsent, RegisterDataSet
from cityledger.modules.consent.handlers import compute_data_set_id
from cityledger.modules.devices import BindDevice, compute_device_did
from cityledger.modules.identity import AccreditIssuer, compute_did
from cityledger.modules.mobility import CreateProgramme
from cityledger.node.home import init_home, load_config, load_key
from cityledger.node.runner import Node
from cityledger.offchain.identity import RESIDENT_ID, VEHICLE_REGISTRATION
from cityledger.offchain.identity.devices import build_registration, prove_ownership
from cityledger.offchain.mobility.rewards import issue_enrollment
from cityledger.sdk import IdentityClient
from cityledger.sdk.payments import open_channel, set_policy
from cityledger.tools.wallet_ui import WalletSession, create_wallet_app

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PHONE_WIDTH = 375
RESIDENT = {"name": "Valeska Walletova", "birth_date": 19800101, "district": "Zederwinkel",
            "resident_since": 20200202, "id_number": "WX-0000001"}
DEVICE_KEY = PrivateKey(2, b"\x42" * 32)
DEPOSIT, PAID_TRIP = 2_500, 220  # the stored "good" trip: 100 per trip + 10 per km for 12 km


class Town:
    """The live node, its offices and the resident's wallet with what its accounts hold."""

    def __init__(self, home: Path, server: LiveServer, folder: Path) -> None:
        self.home, self.url, self.folder = home, server.url, folder
        self.public = IdentityClient(server.url)
        by_folder = {item["folder"]: item["did"] for item in self.public.list_issuers()}
        self.id_did, self.transport_did = by_folder["id-office"], by_folder["transport-office"]
        self.id_office = IdentityClient(server.url, token=self.token("id-office"))
        self.transport = IdentityClient(server.url, token=self.token("transport-office"))
        self.key = {name: load_key(home / "keys" / f"{name}.json") for name in
                    ("city-government", "car-maker", "grid-operator")}
        self.wallet_path = folder / "resident.wallet"

    def token(self, office: str) -> str:
        return (self.home / "issuers" / office / "token").read_text().strip()

    def send(self, key: PrivateKey, messages: list) -> None:
        result = self.public.submit(sdk.sign(CHAIN_ID, key, self.public.get_nonce(key.address()), messages), wait=True)
        assert result.result is not None and result.result.ok, result.result


def _node(folder: Path) -> Node:
    """A solo node on CHAIN_ID (the stored reward claims are proven for it)."""
    home = folder / "home"
    init_home(home, chain_id=CHAIN_ID, port=free_port())
    config = load_config(home)
    config.solo.block_interval_ms = 20
    return Node(config)


def _device(town: Town, wallet) -> tuple[str, PrivateKey]:
    """The car maker registers a car; the transport office registers it to the wallet's vehicle account."""
    maker = town.key["car-maker"]
    town.send(maker, [build_registration(CHAIN_ID, "vehicle", "CityCar-e1", DEVICE_KEY,
                                         compute_did(maker.signer(), b""), maker)])
    did, owner = compute_device_did(DEVICE_KEY.public_key), wallet.account("vehicle")
    values = {"device_did": did, "owner_account": address_to_str(owner.address()), "registered_on": TODAY}
    town.public.obtain_credential(wallet, town.transport.create_offer(town.transport_did, VEHICLE_REGISTRATION,
                                                                      values, "REG-WALLET-1"))
    town.send(owner, [BindDevice(did, prove_ownership(wallet, town.public.ledger, CHAIN_ID, did, owner))])
    town.public.submit(set_policy(CHAIN_ID, owner, town.public.get_nonce(owner.address()), did, daily_cap=5_000,
                                  counterparty_cap=1_000, expiry_height=1_000_000), wait=True)
    return did, owner


def _consent(town: Town, owner: PrivateKey, did: str) -> str:
    """Governance accredits the ID office's DID as a telemetry gateway (3 of 5 members); the owner
    registers the car's data set and grants the transport office a research consent over it."""
    government, maker, grid = town.key["city-government"], town.key["car-maker"], town.key["grid-operator"]
    town.public.submit(sdk.propose(CHAIN_ID, government, town.public.get_nonce(government.address()),
                                   AccreditIssuer(town.id_did, "telemetry-gateway")), wait=True)
    for member in (maker, grid):
        town.public.submit(sdk.vote(CHAIN_ID, member, town.public.get_nonce(member.address()), 1), wait=True)
    assert town.public.query("governance", "proposal", id=1)["status"] == "executed"
    commitment = b"\x5a" * 32
    town.send(owner, [RegisterDataSet("vehicle-telemetry-1", commitment, did, town.id_did, "")])
    data_set = compute_data_set_id(owner.address(), did, "vehicle-telemetry-1", commitment)
    height = town.public.status().height
    town.send(owner, [GrantConsent(data_set, town.transport_did, "research", 1, height + 1_000, height + 1_000)])
    return data_set


def _reward(town: Town, account: PrivateKey) -> None:
    """The city sponsors programme 1 (its tickets signed by the transport office); the wallet's rewards
    account enrolls with the stored trips' pseudonym and claims the stored "good" trip."""
    sponsor = town.key["city-government"]
    office_key = load_key(town.home / "issuers" / "transport-office" / "key.json")
    height = town.public.status().height
    town.send(sponsor, [CreateProgramme("driving-score-v1", 10_000, 60, 100, 10, 500, 2_000, 100_000,
                                        height + 10_000, town.transport_did)])
    period = (town.public.status().height + 1) // 100_000
    ticket = issue_enrollment(office_key, OFFICE_SECRET, CHAIN_ID, 1, period, town.did, PSEUDONYM.public_key,
                              account.address())
    town.send(account, [ticket])
    town.send(account, [stored_claims()["good"]])


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (skipped, or failed in CI, when Debian's chromium is missing)."""
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    chromium_path()  # skip (or fail in CI) before starting anything when the browser is missing
    folder = tmp_path_factory.mktemp("wallet-ui")
    node = _node(folder)
    with LiveServer(node) as server, fast_cred_defs():
        town = Town(folder / "home", server, folder)
        town.id_office.publish(town.id_did, RESIDENT_ID)
        town.transport.publish(town.transport_did, VEHICLE_REGISTRATION)
        wallet = town.public.open_wallet(town.wallet_path, "pw", create=True, tails_cache=folder / "tails")
        town.public.obtain_credential(wallet, town.id_office.create_offer(town.id_did, RESIDENT_ID, RESIDENT,
                                                                          RESIDENT["id_number"]))
        town.did, owner = _device(town, wallet)
        town.payer = wallet.account("payments")
        government = town.key["city-government"]
        town.public.submit(sdk.transfer(CHAIN_ID, government, town.public.get_nonce(government.address()),
                                        town.payer.address(), 10_000), wait=True)
        town.public.submit(open_channel(CHAIN_ID, town.payer, 0, town.key["grid-operator"].address(), DEPOSIT, 5),
                           wait=True)
        town.data_set = _consent(town, owner, town.did)
        _reward(town, wallet.account("rewards"))
        yield town
        town.public.close()


@contextmanager
def wallet_ui(town: Town):
    """`cityledger wallet ui` for the resident's wallet file, under uvicorn in a thread on a free port."""
    port = free_port()
    session = WalletSession(town.wallet_path, IdentityClient(town.url), port, town.folder / "tails")
    server = uvicorn.Server(uvicorn.Config(create_wallet_app(session), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="wallet-ui", daemon=True)
    thread.start()
    while not server.started:  # a hang guard only: uvicorn either starts or its thread ends
        if not thread.is_alive():
            raise RuntimeError("the wallet page did not start")
        time.sleep(0.01)
    try:
        yield session, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def unlock(browser, session: WalletSession, origin: str, width: int = 1280):
    """Open the printed URL, type the passphrase, press Enter: the unlocked page and its Watch."""
    page, watch = open_page(browser, origin, width=width)
    page.goto(f"{origin}/?token={session.token}")
    assert "token=" not in page.url  # the token left the address bar for an HttpOnly cookie
    page.fill("#passphrase", "pw")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    return page, watch


def cells(page, table: str) -> list[list[str]]:
    return [[cell.inner_text() for cell in row.locator("td").all()] for row in page.locator(f"{table} tbody tr").all()]


def test_the_page_shows_devices_channels_data_sets_consents_log_note_and_rewards(town, browser):
    with wallet_ui(town) as (session, origin):
        page, watch = unlock(browser, session, origin)
        vehicle, payments, rewards = (address_to_str(session.wallet.account(p).address())
                                      for p in ("vehicle", "payments", "rewards"))
        assert {row[1] for row in cells(page, "#t-accounts")} == {vehicle, payments, rewards}
        [device] = cells(page, "#t-devices")
        assert device[:5] == [town.did, "vehicle", "CityCar-e1", "active", "vehicle/0"] and "5000 a day" in device[5]
        [channel] = cells(page, "#t-channels")
        assert channel == ["1", "payments/0", "you pay", address_to_str(town.key["grid-operator"].address()),
                           str(DEPOSIT), "0", str(DEPOSIT), "open"]
        card = page.locator("section.card", has_text=town.data_set)
        [consent] = cells(card, "table.consents")
        assert consent[1:3] == [town.transport_did, "research"] and consent[5] == "granted"
        assert "no vault service" in page.inner_text("#log-note")
        assert cells(page, "#t-rewards") == [["1", "0", "rewards/0", str(PAID_TRIP), "1"]]
        assert RESIDENT["name"] in page.inner_text("main")
        shots = os.environ.get("CITYLEDGER_SCREENSHOTS")
        if shots:
            page.screenshot(path=str(Path(shots) / "wallet.png"), full_page=True)
        assert watch.console_errors == [] and watch.outside_requests == []
        page.context.close()


def test_the_page_reads_at_phone_width_and_by_keyboard(town, browser):
    with wallet_ui(town) as (session, origin):
        page, watch = unlock(browser, session, origin, width=PHONE_WIDTH)
        # Nothing wider than the screen: tables scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
        assert page.locator("table").count() == page.locator("table > caption").count() > 5  # every table named
        shots = os.environ.get("CITYLEDGER_SCREENSHOTS")
        if shots:
            page.evaluate("document.getElementById('devices').scrollIntoView()")
            page.screenshot(path=str(Path(shots) / "wallet-phone.png"))
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        # From the keyboard: the section links reach each part of the page.
        labels = page.locator("nav[aria-label=Sections] a").all_inner_texts()
        assert labels[:2] == ["Credentials", "Devices"] and page.locator("h1").count() == 1
        page.locator("nav[aria-label=Sections] a", has_text="Rewards").focus()
        page.keyboard.press("Enter")
        # The fragment navigation reaches Playwright's page.url a moment later: ask the page itself.
        page.wait_for_function("location.hash === '#rewards'", timeout=10_000)
        assert watch.console_errors == [] and watch.outside_requests == []
        page.context.close()


def test_the_node_answers_hold_no_attribute_value_of_the_resident(town):
    """What the page asks the node is ledger content: the resident's attribute values are in none of it."""
    wallet = town.public.open_wallet(town.wallet_path, "pw", tails_cache=town.folder / "tails")
    answers = []
    for purpose in ("vehicle", "payments", "rewards"):
        address = address_to_str(wallet.account(purpose).address())
        for segment in ("devices", "channels", "escrows", "data-sets", "enrollments"):
            answers.append(httpx.get(f"{town.url}/accounts/{address}/{segment}").text)
    text = "\n".join(answers)
    assert town.did in text and town.data_set in text
    for value in RESIDENT.values():
        assert str(value) not in text


def test_the_page_shows_a_credential_then_its_revocation(town, browser):
    with wallet_ui(town) as (session, origin):
        page, watch = unlock(browser, session, origin)
        status = page.locator("section.card h3", has_text=RESIDENT_ID).locator(".status")
        assert status.get_attribute("data-status") == "valid"
        town.id_office.revoke(town.id_did, [RESIDENT["id_number"]])  # the REST call `issuer revoke` makes
        page.reload()
        assert status.get_attribute("data-status") == "revoked"
        assert watch.console_errors == [] and watch.outside_requests == []
        page.context.close()


def test_the_page_refuses_foreign_origins_hosts_tokens_and_forms(town):
    with wallet_ui(town) as (session, origin), httpx.Client(base_url=origin) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", params={"token": "x" * 43}).status_code == 401
        assert client.get("/", params={"token": "\u00e9" * 43}).status_code == 401
        assert client.get("/", params={"token": session.token},
                          headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get("/", params={"token": session.token}).status_code == 303
        locked = client.get("/")
        assert locked.status_code == 200 and 'id="passphrase"' in locked.text
        assert client.get("/", headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.get("/", headers={"Host": f"evil.example:{session.port}"}).status_code == 403
        own = {"Origin": origin}
        form = {"csrf": session.csrf, "passphrase": "pw"}
        assert client.post("/unlock", data=form).status_code == 403  # no Origin: not from the page
        assert client.post("/unlock", data=form, headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/unlock", data={"passphrase": "pw"}, headers=own).status_code == 403  # no CSRF token
        assert client.post("/unlock", data={**form, "csrf": "\u00e9"}, headers=own).status_code == 403
        wrong = client.post("/unlock", data={**form, "passphrase": "not-it"}, headers=own)
        assert wrong.status_code == 400 and "passphrase:" in wrong.text
        assert session.wallet is None and 'id="passphrase"' in client.get("/").text
        assert client.post("/unlock", data=form, headers=own).status_code == 303 and session.wallet is not None
        unlocked = client.get("/")
        assert town.did in unlocked.text  # the holdings are read for this browser
        # Unlocked, the page still answers no other site, with or without the cookie.
        assert client.get("/", headers={"Origin": "http://evil.example"}).status_code == 403
        assert httpx.get(f"{origin}/", headers={"Origin": "http://evil.example"}).status_code == 403
        assert client.post("/lock", data={"csrf": session.csrf}, headers=own).status_code == 303
        assert session.wallet is None
