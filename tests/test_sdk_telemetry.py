"""The SDK's records-root anchor tx: what the gateway's anchor callable sends."""

from __future__ import annotations

import pytest

from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.core.tx import TxCodec, verify_tx_signatures
from cityledger.modules.consent import AnchorRecordsRoot
from cityledger.offchain.telemetry import compute_records_root
from cityledger.sdk.telemetry import anchor_records_root


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
