"""The hand-written ABCI wire encodings against the generated protobuf classes, and the framing fast paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityledger.app.abc import FinalizeBlockResult, TxResult
from cityledger.core.events import Event, ValidatorUpdate
from cityledger.engines.cometbft.abci_server import compute_response_frame
from cityledger.engines.cometbft.convert import (
    INDEX_EVENT_ATTRIBUTES,
    encode_finalize_block,
    encode_tx_result,
    to_pb_validator_update,
)
from cityledger.engines.cometbft.framing import compute_frame, decode_uvarint, encode_uvarint, split_frames
from cityledger.engines.cometbft.proto import abci

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


# -- reference: the same messages built with the generated classes --------------------------------

def reference_event(event: Event):
    attributes = [abci.EventAttribute(key=k, value=v, index=INDEX_EVENT_ATTRIBUTES) for k, v in event.attributes]
    return abci.Event(type=event.type, attributes=attributes)


def reference_fields(result: TxResult) -> dict:
    return {"code": result.code, "data": result.data, "log": result.log, "gas_wanted": result.gas_wanted,
            "gas_used": result.gas_used, "events": [reference_event(e) for e in result.events],
            "codespace": result.codespace}


def reference_finalize_block(result: FinalizeBlockResult):
    return abci.ResponseFinalizeBlock(
        events=[reference_event(e) for e in result.events],
        tx_results=[abci.ExecTxResult(**reference_fields(r)) for r in result.tx_results],
        validator_updates=[to_pb_validator_update(v) for v in result.validator_updates],
        app_hash=result.app_hash,
    )


# -- vectors ------------------------------------------------------------------------------------

TRANSFER = Event("transfer", (("amount", "1"), ("recipient", "ab" * 20), ("sender", "cd" * 20)))
TX_RESULTS = [
    TxResult(),
    TxResult(sender=b"s" * 20, nonce=3, gas_wanted=170),  # what check_tx answers for a transfer
    TxResult(events=(TRANSFER,), gas_used=170),  # what finalize_block answers for one
    TxResult(code=7, codespace="bank", log="insufficient funds: have 1, need 2 — ünïcode"),
    TxResult(data=b"\x00" * 300, gas_wanted=-1, gas_used=INT64_MAX),
    TxResult(code=2**32 - 1, gas_wanted=INT64_MIN, events=(Event("", (("", ""), ("k", ""))), Event("e"))),
]

texts = st.text(max_size=40)
events = st.builds(Event, texts, st.lists(st.tuples(texts, st.text(max_size=200)), max_size=4).map(tuple))
tx_results = st.builds(
    TxResult,
    code=st.integers(0, 2**32 - 1), codespace=texts, log=st.text(max_size=300), data=st.binary(max_size=300),
    events=st.lists(events, max_size=3).map(tuple), gas_wanted=st.integers(INT64_MIN, INT64_MAX),
    gas_used=st.integers(INT64_MIN, INT64_MAX),
)


@pytest.mark.parametrize("result", TX_RESULTS)
def test_tx_result_encodes_as_check_tx_and_exec_tx_result(result):
    encoded = encode_tx_result(result)
    assert encoded == abci.ResponseCheckTx(**reference_fields(result)).SerializeToString()
    assert encoded == abci.ExecTxResult(**reference_fields(result)).SerializeToString()


@given(tx_results)
def test_tx_result_encoding_parses_back(result):
    assert abci.ResponseCheckTx.FromString(encode_tx_result(result)) == abci.ResponseCheckTx(**reference_fields(result))


def test_finalize_block_encoding():
    update = ValidatorUpdate(pub_key_type="ed25519", pub_key=b"\x01" * 32, power=10)
    for result in (
        FinalizeBlockResult(tx_results=(), app_hash=b""),
        FinalizeBlockResult(tx_results=tuple(TX_RESULTS), app_hash=b"h" * 32, events=(TRANSFER, Event("x")),
                            validator_updates=(update,)),
    ):
        encoded = encode_finalize_block(result)
        assert encoded == reference_finalize_block(result).SerializeToString()


def test_response_frame_matches_protobuf():
    body = encode_tx_result(TX_RESULTS[1])
    expected = abci.Response(check_tx=abci.ResponseCheckTx.FromString(body)).SerializeToString()
    assert compute_response_frame("check_tx", body) == compute_frame(expected)
    assert compute_response_frame("flush", b"") == compute_frame(abci.Response(flush=abci.ResponseFlush()).SerializeToString())
    big = encode_finalize_block(FinalizeBlockResult(tx_results=(TX_RESULTS[2],) * 200, app_hash=b"h" * 32))
    expected = abci.Response(finalize_block=abci.ResponseFinalizeBlock.FromString(big)).SerializeToString()
    assert compute_response_frame("finalize_block", big) == compute_frame(expected)


def test_invalid_tx_result_code_out_of_range():
    with pytest.raises(ValueError, match="uint32"):
        encode_tx_result(TxResult(code=2**32))


def test_invalid_gas_out_of_int64_range():
    with pytest.raises(ValueError, match="int64"):
        encode_tx_result(TxResult(gas_used=2**63))


# -- framing fast paths --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0x7F, 0x80, 0x3FFF, 0x4000, 0x1FFFFF, 0x200000])
def test_uvarint_length_boundaries(value):
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize("sizes", [[0, 1, 127], [128, 5000, 16383], [16384, 20_000], [127, 128, 16384, 0]])
def test_split_frames_every_header_length(sizes):
    messages = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    stream = b"".join(compute_frame(m) for m in messages)
    buffer = bytearray(stream)
    assert split_frames(buffer, 100) == messages
    assert buffer == bytearray()
    # Fed a byte at a time, a frame comes out only once it is whole, header split or not.
    buffer, out = bytearray(), []
    for byte in stream:
        buffer.append(byte)
        out += split_frames(buffer, 100)
    assert out == messages


def test_split_frames_stops_at_max_frames():
    buffer = bytearray(b"".join(compute_frame(b"x" * n) for n in (1, 200, 3)))
    assert split_frames(buffer, 2) == [b"x", b"x" * 200]
    assert split_frames(buffer, 2) == [b"xxx"]
