"""The owner lists a resident's page reads: module queries (devices/owned, payments/channels_of and
escrows_of, consent/data_sets_of, mobility/enrollments_of), their REST routes and SDK calls.

Each keeps only the account's records, pages by a cursor through the whole collection, and answers
hostile values (newlines, huge or negative numbers, invalid hex, oversized text) with an error naming
the field, in-process and over REST alike.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from test_api_helpers import make_node
from cityledger import sdk
from cityledger.api import create_app
from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey
from cityledger.core.state import DictState
from cityledger.core.tx import build_tx
from cityledger.core.types import Address, address_to_str
from cityledger.modules import paging
from cityledger.modules.consent.keys import data_set_key
from cityledger.modules.consent.messages import DataSetRecord
from cityledger.modules.consent.owned import query_data_sets_of
from cityledger.modules.devices.keys import device_key
from cityledger.modules.devices.messages import DeviceRecord
from cityledger.modules.devices.owned import query_owned
from cityledger.modules.mobility.keys import enrollment_key
from cityledger.modules.mobility.messages import EnrollmentRecord
from cityledger.modules.mobility.owned import query_enrollments_of
from cityledger.modules.payments import LockEscrow, OpenChannel

MINE, OTHER = Address(b"\x11" * 20), Address(b"\x22" * 20)
HOSTILE_ACCOUNTS = ["", "city" + "1" * 39 + "\n", "city" + "g" * 40, "city" + "1" * 40 + " ", "-1",
                    "9" * 400, "city" + "1" * 10_000, "\u00e9" * 44]
HOSTILE_CURSORS = ["zz", "abc", "ab\ncd", " ab", "ab ", "-1", "9" * 2_000, "\u00e9\u00e9", "0x10"]


def _device(n: int, owner: Address, pending: Address = Address(b"")) -> DeviceRecord:
    return DeviceRecord(f"did:city:dev{n:04d}", "vehicle", "CityCar-e1", "did:city:maker", owner, pending, 1,
                        "active", n, n)


@pytest.fixture
def state() -> DictState:
    """Devices, data sets and enrollments of two accounts, interleaved in key order."""
    items = {}
    for n in range(7):
        owner = MINE if n % 2 == 0 else OTHER
        items[device_key(f"did:city:dev{n:04d}")] = encode(_device(n, owner))
        data_set = f"ds-{n:032x}"
        items[data_set_key(data_set)] = encode(DataSetRecord(data_set, owner, "", "vehicle-telemetry-1", b"\x00" * 32,
                                                             f"did:city:dev{n:04d}", "did:city:gw", 0, 0, n))
        items[enrollment_key(1, n, owner)] = encode(EnrollmentRecord(1, n, owner, PrivateKey(1, b"\x05" * 32).public_key,
                                                                     10 * n, n))
    items[device_key("did:city:dev9999")] = encode(_device(9999, OTHER, pending=MINE))  # offered to MINE
    return DictState(items)


def _all(query, state, args: dict[str, str]) -> list[dict]:
    """Every page of a query, following 'next'."""
    items, after = [], ""
    while True:
        page = query(state, {**args, "after": after})
        items += page["items"]
        if page["next"] is None:
            return items
        after = page["next"]


@pytest.mark.parametrize("query, argument, field", [
    (query_owned, "owner", "did"), (query_data_sets_of, "owner", "id"), (query_enrollments_of, "account", "period")])
def test_owner_queries_keep_only_the_accounts_records_across_pages(state, monkeypatch, query, argument, field):
    mine = address_to_str(MINE)
    whole = query(state, {argument: mine})
    assert whole["next"] is None and len(whole["items"]) == (5 if query is query_owned else 4)
    assert all(mine in (item.get("owner"), item.get("pending_owner"), item.get("account")) for item in whole["items"])
    monkeypatch.setattr(paging, "MAX_OWNED_RESULTS", 1)
    assert [i[field] for i in _all(query, state, {argument: address_to_str(MINE)})] == [i[field] for i in whole["items"]]
    monkeypatch.setattr(paging, "MAX_OWNED_SCAN", 2)  # pages that stop on the scan bound, some of them empty
    assert [i[field] for i in _all(query, state, {argument: address_to_str(MINE)})] == [i[field] for i in whole["items"]]


def test_devices_owned_include_a_device_offered_to_the_account(state):
    dids = [item["did"] for item in query_owned(state, {"owner": address_to_str(MINE)})["items"]]
    assert dids == ["did:city:dev0000", "did:city:dev0002", "did:city:dev0004", "did:city:dev0006", "did:city:dev9999"]
    assert query_enrollments_of(state, {"account": address_to_str(MINE)})["items"][1]["paid"] == 20


@pytest.mark.parametrize("bad", HOSTILE_ACCOUNTS)
def test_hostile_accounts_are_refused_naming_the_field(state, bad):
    for query, argument in ((query_owned, "owner"), (query_data_sets_of, "owner"), (query_enrollments_of, "account")):
        with pytest.raises(ValueError, match=f"^{argument}: expected 'city'"):
            query(state, {argument: bad})


@pytest.mark.parametrize("bad", HOSTILE_CURSORS)
def test_hostile_cursors_are_refused_naming_the_field(state, bad):
    with pytest.raises(ValueError, match="^after: expected"):
        query_owned(state, {"owner": address_to_str(MINE), "after": bad})


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A node where alice opened two channels and locked an escrow to bob, and bob one channel to a third."""
    test_node = make_node(tmp_path_factory.mktemp("owned-api"))
    node, alice, bob = test_node.node, test_node.alice, test_node.bob
    third = PrivateKey(1, b"\x33" * 32).address()
    with TestClient(create_app(node)) as client:
        sent = [(alice, 0, [OpenChannel(bob.address(), 1_000, 3, alice.public_key), LockEscrow(bob.address(), 50, 100),
                            OpenChannel(bob.address(), 7, 3, alice.public_key)]),
                (bob, 0, [OpenChannel(third, 5, 3, bob.public_key)])]
        for key, nonce, messages in sent:
            assert node.engine.submit(build_tx(test_node.chain_id, [key], nonce, messages)).result.code == 0
        node.engine.produce_block()
        client.tn = test_node
        yield client
    node.store.close()


def test_rest_and_sdk_list_an_accounts_channels_and_escrows(api):
    alice, bob = address_to_str(api.tn.alice.address()), address_to_str(api.tn.bob.address())
    channels = api.get(f"/accounts/{alice}/channels").json()
    assert [c["deposit"] for c in channels["items"]] == [1_000, 7] and channels["next"] is None
    with sdk.Client(base_url=str(api.base_url), transport=api._transport) as node:
        assert [c.channel_id for c in node.channels_of(bob).items] == [1, 2, 3]  # payee of two, payer of one
        assert [e.amount for e in node.escrows_of(api.tn.bob.address()).items] == [50]
        assert node.devices_of(alice).items == [] and node.data_sets_of(alice).items == []
        assert node.enrollments_of(alice).items == []
        with pytest.raises(sdk.ApiError) as refused:
            node.channels_of(alice, after="zz")
        assert refused.value.status == 400


@pytest.mark.parametrize("segment", ["devices", "channels", "escrows", "data-sets", "enrollments"])
def test_rest_refuses_hostile_values_naming_the_field(api, segment):
    alice = address_to_str(api.tn.alice.address())
    for bad in ("city" + "1" * 39 + "\n", "city" + "g" * 40, "-1", "9" * 400, "city" + "1" * 10_000):
        answer = api.get(f"/accounts/{quote(bad, safe='')}/{segment}")
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "address", (bad, answer.text)
    for bad in ("zz", "ab\ncd", "-1", "9" * 2_000, "ab cd"):
        answer = api.get(f"/accounts/{alice}/{segment}", params={"after": bad})
        assert answer.status_code == 400 and answer.json()["error"]["field"] == "after", (bad, answer.text)
