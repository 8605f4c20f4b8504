"""Canonical encoding: round trips, golden vectors, rejection of non-canonical bytes."""

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityledger.core.encoding import DecodeError, decoder, encode
from cityledger.core.tx import TxCodec, verify_tx_signatures
from cityledger.modules.bank import MultiSend, Output, Transfer

from helpers import CHAIN_ID
from make_vectors import build

VECTORS = json.loads((Path(__file__).parent / "vectors" / "encoding.json").read_text())


def test_golden_vectors_unchanged():
    """The committed vectors are what this code produces, byte for byte."""
    assert build() == VECTORS


def test_golden_txs_decode_and_verify():
    codec = TxCodec([Transfer, MultiSend], CHAIN_ID)
    for name, hex_tx in VECTORS["txs"].items():
        decoded = codec.decode(bytes.fromhex(hex_tx))
        verify_tx_signatures(decoded)
        assert encode(decoded.tx).hex() == hex_tx, name


def test_transfer_layout_is_documented():
    # [tag, to, amount] as a msgpack array: 0x93, str8 tag, bin8 address, uint32 amount
    raw = bytes.fromhex(VECTORS["messages"]["transfer"])
    assert raw[0] == 0x93 and raw[1] == 0xB1 and raw[2:19] == b"bank/1.0/transfer"
    assert raw[19:21] == b"\xc4\x14" and raw[41] == 0xCE and int.from_bytes(raw[42:46], "big") == 1_500_000


addresses = st.binary(min_size=20, max_size=20)
amounts = st.integers(min_value=-(2**63), max_value=2**64 - 1)


@given(to=addresses, amount=amounts)
def test_transfer_round_trip(to, amount):
    message = Transfer(to, amount)
    assert decoder(Transfer).decode(encode(message)) == message


@given(outputs=st.lists(st.tuples(addresses, amounts), max_size=20))
def test_multi_send_round_trip(outputs):
    message = MultiSend([Output(to, amount) for to, amount in outputs])
    assert decoder(MultiSend).decode(encode(message)) == message


def test_invalid_non_canonical_integer_rejected():
    raw = bytes.fromhex(VECTORS["messages"]["transfer"])
    widened = raw[:41] + b"\xcf" + (1_500_000).to_bytes(8, "big")  # uint64 where uint32 suffices
    with pytest.raises(DecodeError, match="non-canonical"):
        decoder(Transfer).decode(widened)


def test_invalid_float_rejected():
    import msgspec

    with pytest.raises(DecodeError, match="Expected `int`, got `float`"):
        decoder(Transfer).decode(msgspec.msgpack.encode(["bank/1.0/transfer", b"\x00" * 20, 1.0]))
