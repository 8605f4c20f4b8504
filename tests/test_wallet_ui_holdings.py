"""The wallet page's sections against a scripted node (a unit test: the live node is in
test_wallet_ui_browser.py). The access log with a running vault service, its absence, a failing
section that leaves the others standing, and the page bound on each owner list."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cityledger.core.types import address_to_str
from cityledger.offchain.identity import Wallet
from cityledger.sdk import ApiError
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
        return self.vault(body.reader)

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


def test_the_access_log_of_a_node_with_a_vault_service_is_one_row_per_entry(wallet):
    node = ScriptedNode(lambda owner: VaultLogView(owner=owner, service="did:city:vault",
                                                   entries=[_entry(1, owner), _entry(2, owner)], next_seq=None))
    page = holdings.read_holdings(node, wallet)
    assert [(r["seq"], r["kind"], r["records"]) for r in page["access_log"].rows] == [(1, "consumer-read", 2),
                                                                                    (2, "consumer-read", 2)]
    assert page["access_log"].note is None and page["access_log"].error is None
    [request] = node.log_requests  # signed by the account that owns the data set, nothing else sent
    assert request.reader == address_to_str(wallet.account("vehicle").address()) and len(request.signatures) == 1


def test_a_node_without_the_vault_service_gets_a_note_not_an_error(wallet):
    page = holdings.read_holdings(ScriptedNode(ApiError(503, "unavailable", "vault service not running")), wallet)
    assert page["access_log"].note == holdings.NO_VAULT_NOTE and page["access_log"].error is None


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
