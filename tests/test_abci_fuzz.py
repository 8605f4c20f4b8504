"""The ABCI server under random frames, with the real app: it answers or closes, never halts or hangs.

One connection plays CometBFT's consensus connection and stays open; every generated input comes on
a new connection of its own: random bytes, length prefixes that are too long or oversized, garbage
of a valid length, truncated frames, and well-formed requests of every kind with random fields
(consensus requests among them, which only the consensus connection may send). After each, the
server must have answered with well-formed responses and closed or kept that connection, the app
must not have failed, and the consensus connection must still be answered.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityledger.engines.cometbft.abci_server import MAX_CONNECTIONS, AbciServer, parse_address
from cityledger.engines.cometbft.framing import MAX_FRAME_BYTES, compute_frame, encode_uvarint, split_frames
from cityledger.engines.cometbft.proto import abci
from cityledger.node.home import init_home, load_config
from cityledger.node.runner import Node

READ_TIMEOUT_S = 10  # a server that neither answers nor closes within this has hung
MAX_RESPONSE_BYTES = 1 << 20


class _Server:
    """The real app (a solo-assembled node's CityApp, genesis applied) behind an AbciServer thread."""

    def __init__(self, tmp_path) -> None:
        init_home(tmp_path / "home", chain_id="city-fuzz-1", members=1, issuers=False)
        self.node = Node(load_config(tmp_path / "home"))
        self.loop = asyncio.new_event_loop()
        self.server = AbciServer(self.node.app, "tcp://127.0.0.1:0")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)
        _, host, port = parse_address(self.server.address)
        self.address = (host, port)

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=READ_TIMEOUT_S)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.node.store.close()


def _request(**kind) -> bytes:
    return compute_frame(abci.Request(**kind).SerializeToString())


def _read_responses(sock: socket.socket, count: int) -> list:
    buffer, responses = bytearray(), []
    while len(responses) < count:
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {len(responses)} of {count} responses"
        buffer += data
        responses += [abci.Response.FromString(f) for f in split_frames(buffer, 1000)]
    return responses


def _exchange_garbage(server: _Server, payload: bytes) -> list:
    """Send payload on a new connection, close our side, read until the server closes: its responses."""
    received = bytearray()
    with server.connect() as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed first: what it wrote before is still read below
        try:
            while len(received) <= MAX_RESPONSE_BYTES:
                data = sock.recv(65536)  # socket.timeout here means the server hung
                if not data:
                    break
                received += data
        except ConnectionResetError:
            pass
    frames = split_frames(received, len(received) + 1)
    assert not received, f"a partial response frame: {bytes(received[:40])!r}"
    return [abci.Response.FromString(frame) for frame in frames]


def _assert_consensus_alive(server: _Server, consensus: socket.socket, tag: str) -> None:
    consensus.sendall(_request(echo=abci.RequestEcho(message=tag)) + _request(flush=abci.RequestFlush()))
    echo, _ = _read_responses(consensus, 2)
    assert echo.echo.message == tag
    assert server.server.fatal_error is None and server.server.stop_reason is None


@pytest.fixture
def served(tmp_path):
    server = _Server(tmp_path)
    consensus = server.connect()
    # The consensus connection claims its role with a first block, as CometBFT's would.
    consensus.sendall(_request(finalize_block=abci.RequestFinalizeBlock(height=1))
                      + _request(commit=abci.RequestCommit()))
    finalized, committed = _read_responses(consensus, 2)
    assert finalized.WhichOneof("value") == "finalize_block" and committed.WhichOneof("value") == "commit"
    try:
        yield server, consensus
    finally:
        consensus.close()
        server.close()


# -- generated inputs --------------------------------------------------------------------------

_u64 = st.integers(min_value=0, max_value=2**64 - 1)
_i64 = st.integers(min_value=-2**63, max_value=2**63 - 1)
_short = st.binary(max_size=64)


def _requests() -> st.SearchStrategy[abci.Request]:
    """Well-formed requests of every kind, with random fields."""
    return st.one_of(
        st.builds(lambda m: abci.Request(echo=abci.RequestEcho(message=m)), st.text(max_size=20)),
        st.just(abci.Request(info=abci.RequestInfo())),
        st.builds(lambda p, d, h, proof: abci.Request(query=abci.RequestQuery(path=p, data=d, height=h, prove=proof)),
                  st.sampled_from(["/store", "/auth/nonce", "/bank/balance", "/identity/did", "", "/x/y/z"])
                  | st.text(max_size=30), _short, _i64, st.booleans()),
        st.builds(lambda tx, t: abci.Request(check_tx=abci.RequestCheckTx(tx=tx, type=t)), st.binary(max_size=512),
                  st.sampled_from([abci.NEW, abci.RECHECK])),
        st.just(abci.Request(list_snapshots=abci.RequestListSnapshots())),
        st.builds(lambda h, f, c: abci.Request(load_snapshot_chunk=abci.RequestLoadSnapshotChunk(height=h, format=f,
                                                                                                 chunk=c)),
                  _u64, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
        st.builds(lambda h, f, n, m, a: abci.Request(offer_snapshot=abci.RequestOfferSnapshot(
            snapshot=abci.Snapshot(height=h, format=f, chunks=n, hash=m, metadata=m), app_hash=a)),
            _u64, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), _short, _short),
        st.builds(lambda i, c: abci.Request(apply_snapshot_chunk=abci.RequestApplySnapshotChunk(index=i, chunk=c)),
                  st.integers(0, 2**32 - 1), _short),
        # Consensus requests: refused, since another connection carries consensus.
        st.builds(lambda h, txs: abci.Request(finalize_block=abci.RequestFinalizeBlock(height=h, txs=txs)),
                  _i64, st.lists(_short, max_size=3)),
        st.just(abci.Request(commit=abci.RequestCommit())),
        st.builds(lambda s: abci.Request(init_chain=abci.RequestInitChain(chain_id="x", app_state_bytes=s)), _short),
        st.builds(lambda txs: abci.Request(prepare_proposal=abci.RequestPrepareProposal(txs=txs, max_tx_bytes=99)),
                  st.lists(_short, max_size=3)),
        st.builds(lambda txs: abci.Request(process_proposal=abci.RequestProcessProposal(txs=txs)),
                  st.lists(_short, max_size=3)),
    )


def _payloads() -> st.SearchStrategy[bytes]:
    valid = _requests().map(lambda r: compute_frame(r.SerializeToString()))
    return st.one_of(
        st.binary(max_size=2048),  # random bytes
        st.binary(min_size=10, max_size=20).map(lambda b: bytes(x | 0x80 for x in b)),  # a varint that never ends
        st.integers(MAX_FRAME_BYTES + 1, 2**64 - 1).map(lambda n: encode_uvarint(n) + b"\x00" * 16),  # oversized
        st.binary(max_size=512).map(compute_frame),  # garbage of a valid length
        st.tuples(valid, st.integers(0, 64)).map(lambda v: v[0][:max(0, len(v[0]) - 1 - v[1])]),  # truncated
        st.lists(valid, min_size=1, max_size=8).map(b"".join),  # well-formed, pipelined
        st.tuples(st.lists(valid, max_size=3).map(b"".join), st.binary(min_size=1, max_size=64)).map(
            lambda v: v[0] + v[1]),  # good frames, then garbage
    )


def test_random_frames_are_answered_or_closed_and_the_node_goes_on(served):
    server, consensus = served
    seen = {"count": 0}

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_payloads())
    def fuzz(payload: bytes) -> None:
        seen["count"] += 1
        responses = _exchange_garbage(server, payload)
        for response in responses:
            assert response.WhichOneof("value") is not None
        _assert_consensus_alive(server, consensus, f"alive-{seen['count']}")

    fuzz()
    assert server.node.store.last_height() == 1  # no stranger finalized or committed a block


@pytest.mark.parametrize("payload", [
    encode_uvarint(MAX_FRAME_BYTES + 1) + b"x",
    encode_uvarint(2**64 - 1),
    b"\xff" * 11,
    compute_frame(b"\xff\xff\xff"),  # a tag that does not decode
    compute_frame(b""),  # a Request with no kind
    _request(commit=abci.RequestCommit()),  # consensus from a second connection
])
def test_invalid_frame_closes_only_its_connection(served, payload):
    server, consensus = served
    responses = _exchange_garbage(server, payload)
    assert [r.WhichOneof("value") for r in responses] in ([], ["exception"])
    _assert_consensus_alive(server, consensus, "still here")


def test_invalid_consensus_request_from_a_stranger_is_refused_by_name(served):
    server, consensus = served
    [refused] = _exchange_garbage(server, _request(finalize_block=abci.RequestFinalizeBlock(height=2)))
    assert refused.exception.error == "protocol error: a finalize_block request while another connection " \
                                      "carries consensus"
    assert server.node.store.last_height() == 1


def test_connections_past_the_limit_are_closed_and_the_rest_go_on(served):
    server, consensus = served
    extra = [server.connect() for _ in range(MAX_CONNECTIONS + 4)]
    try:
        refused = 0
        for sock in extra:
            try:
                sock.sendall(_request(info=abci.RequestInfo()))
                _read_responses(sock, 1)
            except (AssertionError, ConnectionResetError, BrokenPipeError):
                refused += 1
        assert refused == 5  # 16 allowed: the consensus connection and 15 of these
    finally:
        for sock in extra:
            sock.close()
    _assert_consensus_alive(server, consensus, "after the crowd")
