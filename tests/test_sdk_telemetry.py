"""The SDK's records-root anchor txs, and the gateway's anchor callable built on the fleet-wide one."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from test_identity_fixtures import City
from cityledger.core.accounts import get_nonce
from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import TxCodec, verify_tx_signatures
from cityledger.modules.consent import GATEWAY_TYPE, AnchorGatewayRoot, AnchorRecordsRoot
from cityledger.offchain.telemetry import compute_records_root
from cityledger.offchain.telemetry.anchor import compute_inclusion_proof, is_included
from cityledger.sdk.errors import CityLedgerError
from cityledger.sdk.telemetry import anchor_gateway_root, anchor_records_root, gateway_anchor


def test_the_anchor_tx_carries_the_gateway_root_signed_by_the_gateway():
    key = PrivateKey.generate()
    root = compute_records_root([sha256(b"a"), sha256(b"b"), sha256(b"c")])
    raw = anchor_records_root("c-1", key, 7, "ds-1", root, 3, 30_000_000)
    decoded = TxCodec([AnchorRecordsRoot], "c-1").decode(raw)
    verify_tx_signatures(decoded)
    assert decoded.nonce == 7 and decoded.sender == key.address()
    assert decoded.messages == [AnchorRecordsRoot(data_set="ds-1", interval=30_000_000, root=root, count=3)]


def test_a_root_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="root"):
        anchor_records_root("c-1", PrivateKey.generate(), 0, "ds-1", b"\x00" * 31, 1, 1)


# -- the fleet-wide root: one AnchorGatewayRoot per interval, whatever the number of devices --------

class LedgerClient:
    """The three sdk.Client calls gateway_anchor makes, answered in-process by a LocalLedger (no node)."""

    def __init__(self, ledger) -> None:
        self.ledger, self.sent = ledger, 0

    def query(self, module: str, name: str, **args: str):
        return self.ledger.query(f"/{module}/{name}", **args)

    def get_nonce(self, address: bytes) -> int:
        return get_nonce(self.ledger.store, address)

    def submit(self, tx: bytes, *, wait: bool, timeout_s: float):
        assert wait
        self.sent += 1
        [outcome] = self.ledger.commit_block([tx])
        return SimpleNamespace(check=SimpleNamespace(ok=True, log=""), timed_out=False,
                               result=SimpleNamespace(ok=outcome.ok, log=outcome.log))


def test_the_gateway_root_tx_names_the_gateway_and_refuses_a_bad_root():
    key = PrivateKey.generate()
    root = compute_records_root([sha256(b"a"), sha256(b"b")])
    raw = anchor_gateway_root("c-1", key, 3, "did:city:Gw", root, 2, 29_000_000)
    decoded = TxCodec([AnchorGatewayRoot], "c-1").decode(raw)
    verify_tx_signatures(decoded)
    assert decoded.messages == [AnchorGatewayRoot(gateway="did:city:Gw", interval=29_000_000, root=root, count=2)]
    with pytest.raises(ValueError, match="root"):
        anchor_gateway_root("c-1", key, 3, "did:city:Gw", root[:31], 2, 29_000_000)


def test_gateway_anchor_callable_anchors_each_interval_once(tmp_path):
    city = City(tmp_path)
    gateway = city.office("gateway", 0x81)
    assert city.accredit(gateway.did, GATEWAY_TYPE) == "executed"
    client = LedgerClient(city.ledger)
    anchor = gateway_anchor(client, city.ledger.app.chain_id, gateway.keys, gateway.did)
    record_ids = [sha256(b"device %d seq %d" % (d, s)) for d in range(40) for s in range(2)]
    root = compute_records_root(record_ids)
    anchor(root, len(record_ids), 29_000_000)
    anchor(root, len(record_ids), 29_000_000)  # a repeat after a crash: already done, no second tx
    assert client.sent == 1
    with pytest.raises(CityLedgerError, match="holds root"):
        anchor(sha256(b"other"), 1, 29_000_000)
    with pytest.raises(CityLedgerError, match="interval"):  # going back is refused by the ledger
        anchor(sha256(b"older"), 1, 28_999_999)
    [held] = city.ledger.query("/consent/gateway_roots", gateway=gateway.did)["items"]
    assert (held["interval"], held["count"]) == (29_000_000, 80)
    proof = compute_inclusion_proof(record_ids, 57)
    assert is_included(bytes.fromhex(held["root"]), record_ids[57], proof)
