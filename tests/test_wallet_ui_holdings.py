"""The wallet page's sections against a scripted node (a unit test: the live node is in
test_wallet_ui_browser.py). The access log with a running vault service, its absence, a failing
section that leaves the others standing, and the page bound on each owner list."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cityledger.core.types import address_to_str
from cityledger.offchain.identity import Wallet
from cityledger.sdk import ApiError
from cityledger.sdk.vaults import LogBroken
from cityledger.tools.wallet_ui import holdings
from cityledger.wire.owned import OwnedDevicesView
from cityledger.wire.vaults import VaultLogEntryView, VaultLogView


def _entry(seq: int, owner: str) -> VaultLogEntryView:
    return VaultLogEntryView(seq=seq, owner=owner, kind="consumer-read", reader="did:city:insurer", purpose="research",
                             consent_id=1, data_set="ds-" + "0" * 32, record_ids=["r1", "r2"], keys_destroyed=0,
                             height=9, time_s=0, previous="00" * 32, hash="11" * 32, signature="22" * 64)


class ScriptedNode:
    """Answers the calls the page makes; `vault` is the log to answer or the ApiError to raise."""

    def __init__(self, vault, devices_error: ApiError | None = None) -> None:
        self.vault, self.devices_error, self.log_requests = vault, devices_error, []

    def status(self):
        return SimpleNamespace(chain_id="test-city-1", height=12)

    def vault_log(self, body):
        self.log_requests.append(body)
        if isinstance(self.vault, ApiError):
            raise self.vault
        return self.vault(body.reader, body.after_seq)

    def devices_of(self, address, after=""):
        if self.devices_error is not None:
            raise self.devices_error
        return OwnedDevicesView(items=[], next=None)

    def data_sets_of(self, address, after=""):
        return SimpleNamespace(items=[SimpleNamespace(id="ds-" + "0" * 32, schema_id="s", device="did:city:car")],
                               next=None)

    def query(self, module, name, **args):
        return {"items": [], "next": None}

    def _empty(self, address, after=""):
        return OwnedDevicesView(items=[], next=None)

    channels_of = escrows_of = enrollments_of = _empty


@pytest.fixture
def wallet() -> Wallet:
    held = Wallet.in_memory()
    held.account("vehicle")
    return held


def _two_pages(owner: str, after_seq: int) -> VaultLogView:
    """The log in two pages: entry 1, then entry 2."""
    seq = after_seq + 1
    return VaultLogView(owner=owner, service="did:city:vault", entries=[_entry(seq, owner)],
                        next_seq=seq if seq < 2 else None)


def test_the_access_log_of_a_node_with_a_vault_service_is_read_whole_and_checked(wallet, monkeypatch):
    checked = []
    monkeypatch.setattr(holdings, "verify_vault_log",  # the check itself: tests/test_vault_accesslog.py
                        lambda node, service, owner, entries: checked.append((service, owner, len(entries))))
    node = ScriptedNode(_two_pages)
    page = holdings.read_holdings(node, wallet)
    assert [(r["seq"], r["kind"], r["records"]) for r in page["access_log"].rows] == [(1, "consumer-read", 2),
                                                                                    (2, "consumer-read", 2)]
    assert page["access_log"].note == holdings.CHECKED_NOTE and page["access_log"].error is None
    owner = address_to_str(wallet.account("vehicle").address())
    assert checked == [("did:city:vault", owner, 2)]
    # Signed by the account that owns the data set, one request per page.
    assert [(r.reader, r.after_seq, len(r.signatures)) for r in node.log_requests] == [(owner, 0, 1), (owner, 1, 1)]


def test_a_log_that_does_not_match_the_ledger_is_shown_as_broken(wallet, monkeypatch):
    def broken(node, service, owner, entries):
        raise LogBroken("head", "the anchored head at count 2 is not the log's")

    monkeypatch.setattr(holdings, "verify_vault_log", broken)
    page = holdings.read_holdings(ScriptedNode(_two_pages), wallet)
    assert "does not match what the ledger holds" in page["access_log"].error and len(page["access_log"].rows) == 2
    assert page["access_log"].note is None


def test_a_node_without_the_vault_service_gets_a_note_not_an_error(wallet):
    page = holdings.read_holdings(ScriptedNode(ApiError(503, "unavailable", "vault service not running")), wallet)
    assert page["access_log"].note == holdings.NO_VAULT_NOTE and page["access_log"].absent
    assert page["access_log"].error is None


def test_a_failing_section_says_so_and_leaves_the_others(wallet):
    node = ScriptedNode(ApiError(403, "forbidden", "signatures: not the reader's key"),
                        devices_error=ApiError(500, "internal", "boom"))
    page = holdings.read_holdings(node, wallet)
    assert page["devices"].error == "node: boom" and page["access_log"].error == "node: signatures: not the reader's key"
    assert page["data_sets"].error is None and len(page["data_sets"].rows) == 1 and page["channels"].error is None


def test_each_owner_list_reads_at_most_max_ui_pages():
    calls = []

    def endless(address, after):
        calls.append(after)
        return OwnedDevicesView(items=[], next=f"{len(calls):02x}")

    items, more = holdings._pages(endless, "city" + "1" * 40)
    assert more and items == [] and len(calls) == holdings.MAX_UI_PAGES and calls[:2] == ["", "01"]
