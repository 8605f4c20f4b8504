"""The ABCI socket server: framing, pipelining and failure in-process, then a real CometBFT node."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from cityledger.app.abc import (
    Application,
    ApplyChunkResult,
    BlockRequest,
    CommitResult,
    FinalizeBlockResult,
    InfoResult,
    InitChainRequest,
    InitChainResult,
    OfferSnapshotResult,
    QueryResult,
    Snapshot,
    TxResult,
)
from cityledger.core.events import Event
from cityledger.engines.cometbft.abci_server import AbciServer, parse_address
from cityledger.engines.cometbft.config import set_config_values
from cityledger.engines.cometbft.framing import (
    FramingError,
    compute_frame,
    decode_uvarint,
    encode_uvarint,
    split_frames,
)
from cityledger.engines.cometbft.proto import abci

REPO = Path(__file__).resolve().parents[1]
COMETBFT = REPO / ".tools" / "bin" / "cometbft"
CODE_BAD_TX = 1
MAX_WAIT_S = 60


# -- a tiny key/value application --------------------------------------------------------------

class KvApp(Application):
    """Txs are b'key=value'; the app hash is a hash over all sorted pairs; commit persists."""

    def __init__(self) -> None:
        self.committed: dict[bytes, bytes] = {}
        self.staged: dict[bytes, bytes] = {}
        self.height = 0
        self.app_hash = b""
        self.rechecks = 0
        self.init_request: InitChainRequest | None = None
        self.finalized: list[BlockRequest] = []
        self.fail_on: bytes | None = None

    def compute_app_hash(self, state: dict[bytes, bytes]) -> bytes:
        digest = hashlib.sha256()
        for key in sorted(state):
            digest.update(len(key).to_bytes(4, "big") + key + len(state[key]).to_bytes(4, "big") + state[key])
        return digest.digest()

    def info(self) -> InfoResult:
        return InfoResult("kv", "1", 1, self.height, self.app_hash)

    def query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> QueryResult:
        if path != "/store":
            return QueryResult(code=CODE_BAD_TX, log=f"unknown path {path!r}")
        value = self.committed.get(data, b"")
        return QueryResult(key=data, value=value, proof=b"proof:" + data if prove else b"", height=self.height)

    def check_tx(self, tx: bytes, recheck: bool = False) -> TxResult:
        self.rechecks += recheck
        if tx == self.fail_on:
            raise RuntimeError("boom: a bug in the app")
        if tx.count(b"=") != 1:
            return TxResult(code=CODE_BAD_TX, codespace="kv", log=f"bad tx {tx!r}: want key=value")
        return TxResult(gas_wanted=1)

    def init_chain(self, request: InitChainRequest) -> InitChainResult:
        self.init_request = request
        self.app_hash = self.compute_app_hash(self.committed)
        return InitChainResult(app_hash=self.app_hash)

    def prepare_proposal(self, request: BlockRequest, max_tx_bytes: int) -> list[bytes]:
        return list(request.txs)

    def process_proposal(self, request: BlockRequest) -> bool:
        return all(self.check_tx(tx).ok for tx in request.txs)

    def finalize_block(self, request: BlockRequest) -> FinalizeBlockResult:
        if self.fail_on in request.txs:
            raise RuntimeError("boom: a bug in the app")
        self.finalized.append(request)
        self.staged = dict(self.committed)
        results = []
        for tx in request.txs:
            key, value = tx.split(b"=", 1)
            self.staged[key] = value
            event = Event("kv.set", (("key", key.decode()), ("value", value.decode())))
            results.append(TxResult(data=key, events=(event,), gas_used=1))
        self.height = request.height
        return FinalizeBlockResult(tx_results=tuple(results), app_hash=self.compute_app_hash(self.staged))

    def commit(self) -> CommitResult:
        self.committed = self.staged
        self.app_hash = self.compute_app_hash(self.committed)
        return CommitResult()

    def list_snapshots(self) -> list[Snapshot]:
        return [Snapshot(height=self.height, format=1, chunks=1, hash=self.app_hash)]

    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> int:
        return OfferSnapshotResult.REJECT

    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes:
        return b"chunk"

    def apply_snapshot_chunk(self, index: int, chunk: bytes, sender: str) -> int:
        return ApplyChunkResult.ABORT


# -- framing ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31 - 1, 2**63])
def test_uvarint_round_trip(value):
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded, 0) == (value, len(encoded))
    assert decode_uvarint(encoded[:-1], 0) is None


def test_uvarint_is_unsigned_not_zigzag():
    # 300 as Go's binary.PutUvarint writes it; a zigzag varint would be 0xd8 0x04.
    assert encode_uvarint(300) == b"\xac\x02"


def test_split_frames_keeps_a_partial_frame():
    buffer = bytearray(compute_frame(b"abc") + compute_frame(b"") + compute_frame(b"x" * 200)[:50])
    assert split_frames(buffer, 10) == [b"abc", b""]
    assert len(buffer) == 50


def test_invalid_frame_too_long():
    with pytest.raises(FramingError):
        split_frames(bytearray(encode_uvarint(2**40)), 10)


def test_parse_address():
    assert parse_address("tcp://127.0.0.1:26658") == ("tcp", "127.0.0.1", 26658)
    assert parse_address("unix:///tmp/app.sock") == ("unix", "/tmp/app.sock", 0)
    with pytest.raises(ValueError):
        parse_address("127.0.0.1:26658")


# -- the server with a Python client ------------------------------------------------------------

async def _exchange(address: str, requests: list, expect: int) -> list:
    """Send pipelined requests on one connection and read back `expect` responses."""
    _, host, port = parse_address(address)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"".join(compute_frame(r.SerializeToString()) for r in requests))
    await writer.drain()
    buffer, responses = bytearray(), []
    while len(responses) < expect:
        data = await asyncio.wait_for(reader.read(65536), timeout=10)
        if not data:
            break
        buffer += data
        responses += [abci.Response.FromString(f) for f in split_frames(buffer, 1000)]
    writer.close()
    return responses


def _check(tx: bytes, recheck: bool = False):
    kind = abci.RECHECK if recheck else abci.NEW
    return abci.Request(check_tx=abci.RequestCheckTx(tx=tx, type=kind))


def test_pipelined_requests_are_answered_in_order():
    app = KvApp()

    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0")
        await server.start()
        try:
            requests = [abci.Request(echo=abci.RequestEcho(message="hi")), abci.Request(info=abci.RequestInfo())]
            requests += [_check(b"k%d=v" % i if i % 3 else b"bad", recheck=i % 2 == 1) for i in range(300)]
            requests.append(abci.Request(flush=abci.RequestFlush()))
            return await _exchange(server.address, requests, len(requests))
        finally:
            await server.close()

    responses = asyncio.run(scenario())
    kinds = [r.WhichOneof("value") for r in responses]
    assert kinds == ["echo", "info"] + ["check_tx"] * 300 + ["flush"]
    assert responses[0].echo.message == "hi"
    assert responses[1].info.data == "kv"
    codes = [r.check_tx.code for r in responses[2:-1]]
    assert codes == [0 if i % 3 else CODE_BAD_TX for i in range(300)]
    assert app.rechecks == 150


def test_every_request_kind_maps_onto_the_app():
    from google.protobuf.timestamp_pb2 import Timestamp

    from cityledger.engines.cometbft.convert import Misbehavior
    from cityledger.engines.cometbft.proto import crypto_keys

    app = KvApp()
    when = Timestamp(seconds=1_700_000_000, nanos=5)
    pub_key = crypto_keys.PublicKey(ed25519=b"\x01" * 32)
    evidence = abci.Misbehavior(
        type=abci.DUPLICATE_VOTE, validator=abci.Validator(address=b"\x02" * 20, power=10),
        height=1, time=when, total_voting_power=40,
    )
    block = dict(txs=[b"a=1"], height=1, time=when, proposer_address=b"\x03" * 20)
    requests = [
        abci.Request(init_chain=abci.RequestInitChain(
            time=when, chain_id="c", initial_height=1, app_state_bytes=b"{}",
            validators=[abci.ValidatorUpdate(pub_key=pub_key, power=10)],
        )),
        abci.Request(prepare_proposal=abci.RequestPrepareProposal(max_tx_bytes=1000, **block)),
        abci.Request(process_proposal=abci.RequestProcessProposal(hash=b"h" * 32, **block)),
        abci.Request(finalize_block=abci.RequestFinalizeBlock(hash=b"h" * 32, misbehavior=[evidence], **block)),
        abci.Request(commit=abci.RequestCommit()),
        abci.Request(query=abci.RequestQuery(path="/store", data=b"a", prove=True)),
        abci.Request(list_snapshots=abci.RequestListSnapshots()),
        abci.Request(offer_snapshot=abci.RequestOfferSnapshot(snapshot=abci.Snapshot(height=1), app_hash=b"x")),
        abci.Request(load_snapshot_chunk=abci.RequestLoadSnapshotChunk(height=1, format=1, chunk=0)),
        abci.Request(apply_snapshot_chunk=abci.RequestApplySnapshotChunk(index=0, chunk=b"c", sender="p")),
        abci.Request(extend_vote=abci.RequestExtendVote(height=1)),
        abci.Request(verify_vote_extension=abci.RequestVerifyVoteExtension(height=1)),
        abci.Request(flush=abci.RequestFlush()),
    ]

    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0")
        await server.start()
        try:
            return await _exchange(server.address, requests, len(requests))
        finally:
            await server.close()

    responses = asyncio.run(scenario())
    assert [r.WhichOneof("value") for r in responses] == [q.WhichOneof("value") for q in requests]
    init, prepare, process, finalize, _commit, query, snapshots, offer, load, apply, extend, verify, _ = responses
    assert app.init_request.time_ns == 1_700_000_000 * 10**9 + 5
    assert app.init_request.validators[0].pub_key == b"\x01" * 32
    assert init.init_chain.app_hash == app.compute_app_hash({})
    assert list(prepare.prepare_proposal.txs) == [b"a=1"]
    assert process.process_proposal.status == abci.ResponseProcessProposal.ACCEPT
    assert finalize.finalize_block.app_hash == app.compute_app_hash({b"a": b"1"})
    assert finalize.finalize_block.tx_results[0].events[0].attributes[0].key == "key"
    assert app.finalized[0].misbehavior == (
        Misbehavior("duplicate_vote", b"\x02" * 20, 10, 1, 1_700_000_000 * 10**9 + 5, 40),
    )
    assert app.finalized[0].proposer_address == b"\x03" * 20
    assert query.query.value == b"1" and query.query.proof_ops.ops[0].data == b"proof:a"
    assert snapshots.list_snapshots.snapshots[0].format == 1
    assert offer.offer_snapshot.result == abci.ResponseOfferSnapshot.REJECT
    assert load.load_snapshot_chunk.chunk == b"chunk"
    assert apply.apply_snapshot_chunk.result == abci.ResponseApplySnapshotChunk.ABORT
    assert extend.extend_vote.vote_extension == b""
    assert verify.verify_vote_extension.status == abci.ResponseVerifyVoteExtension.ACCEPT


def test_invalid_app_exception_in_check_tx_refuses_the_tx_only():
    from cityledger.engines.cometbft.abci_server import CODE_APP_ERROR

    app = KvApp()
    app.fail_on = b"crash=now"

    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0")
        await server.start()
        try:
            requests = [_check(b"a=1"), _check(b"crash=now"), _check(b"b=2")]
            responses = await _exchange(server.address, requests, 3)
            return responses, server.fatal_error
        finally:
            await server.close()

    responses, fatal = asyncio.run(scenario())
    assert [r.check_tx.code for r in responses] == [0, CODE_APP_ERROR, 0]
    assert responses[1].check_tx.log == "tx: the check failed inside the app (RuntimeError)"
    assert fatal is None


def test_invalid_app_exception_in_finalize_block_halts_with_exception_response():
    app = KvApp()
    app.fail_on = b"crash=now"
    block = abci.Request(finalize_block=abci.RequestFinalizeBlock(txs=[b"crash=now"], height=1))

    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0")
        await server.start()
        try:
            responses = await _exchange(server.address, [block, _check(b"b=2")], 2)
            later = await _exchange(server.address, [abci.Request(info=abci.RequestInfo())], 1)
            return responses, later, server.fatal_error, server.stop_reason
        finally:
            await server.close()

    responses, later, fatal, reason = asyncio.run(scenario())
    assert [r.WhichOneof("value") for r in responses] == ["exception"]
    assert "boom" in responses[0].exception.error
    assert later[0].WhichOneof("value") == "exception"
    assert isinstance(fatal, RuntimeError) and reason.startswith("the application failed: RuntimeError")


# -- a real CometBFT node -----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ServerThread:
    """An AbciServer running in its own event loop on a background thread."""

    def __init__(self, app: Application, address: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = AbciServer(app, address or f"tcp://127.0.0.1:{_free_port()}")
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def _rpc(client: httpx.Client, method: str, **params):
    reply = client.post("/", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    reply.raise_for_status()
    body = reply.json()
    if "error" in body:
        raise RuntimeError(f"{method}: {body['error']}")
    return body["result"]


class _Node:
    """A running `cometbft node` with its app, RPC client and ABCI server."""

    def __init__(self, app: KvApp, client: httpx.Client, server: AbciServer, process, log_path: Path):
        self.app, self.client, self.server = app, client, server
        self.process, self.log_path = process, log_path

    def rpc(self, method: str, **params):
        return _rpc(self.client, method, **params)

    def wait_for_height(self, height: int) -> None:
        """Wait until the node has committed height; fail with its log if it exits or stalls."""
        deadline = time.monotonic() + MAX_WAIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"cometbft exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if int(self.rpc("status")["sync_info"]["latest_block_height"]) >= height:
                    return
            except (httpx.HTTPError, RuntimeError):
                pass
            time.sleep(0.1)
        pytest.fail(f"no block {height} within {MAX_WAIT_S}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(params=["tcp", "unix"])
def cometbft_node(request, tmp_path):
    """A one-validator CometBFT node driving a KvApp through the ABCI server (TCP or unix socket)."""
    if not COMETBFT.exists():
        pytest.fail(f"{COMETBFT} is missing: run `make install` (scripts/install_cometbft.sh)")
    home = tmp_path / "cometbft"
    subprocess.run([str(COMETBFT), "init", "--home", str(home)], check=True, capture_output=True)
    rpc_port, p2p_port = _free_port(), _free_port()
    set_config_values(home / "config" / "config.toml", {
        "moniker": "test-node",
        "rpc.laddr": f"tcp://127.0.0.1:{rpc_port}",
        "p2p.laddr": f"tcp://127.0.0.1:{p2p_port}",
        "p2p.pex": False,
        "consensus.timeout_propose": "500ms",
        "consensus.timeout_prevote": "100ms",
        "consensus.timeout_precommit": "100ms",
        "consensus.timeout_commit": "100ms",
    })
    app = KvApp()
    address = f"unix://{tmp_path / 'abci.sock'}" if request.param == "unix" else None
    abci_thread = _ServerThread(app, address)
    log_path = tmp_path / "cometbft.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [str(COMETBFT), "node", "--home", str(home), f"--proxy_app={abci_thread.server.address}"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{rpc_port}", timeout=30)
    node = _Node(app, client, abci_thread.server, process, log_path)
    try:
        node.wait_for_height(1)
        yield node
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        abci_thread.stop()
    assert abci_thread.server.fatal_error is None, node.log_tail()


@pytest.mark.cometbft
def test_cometbft_commits_tx_and_query_reaches_app(cometbft_node):
    node, app = cometbft_node, cometbft_node.app
    assert app.init_request is not None and len(app.init_request.validators) == 1
    assert app.init_request.validators[0].pub_key_type == "ed25519"
    assert app.init_request.time_ns > 1_600_000_000 * 10**9

    tx = b"city=ledger"
    result = node.rpc("broadcast_tx_commit", tx=base64.b64encode(tx).decode())
    assert result["check_tx"]["code"] == 0
    assert result["tx_result"]["code"] == 0, result
    height = int(result["height"])
    event = result["tx_result"]["events"][0]
    assert event["type"] == "kv.set"
    assert {"key": "key", "value": "city", "index": True} in event["attributes"]

    block = node.rpc("block", height=str(height))
    assert base64.b64decode(block["block"]["data"]["txs"][0]) == tx
    finalized = next(b for b in app.finalized if b.height == height)
    assert finalized.txs == (tx,)
    assert finalized.hash.hex().upper() == block["block_id"]["hash"]

    # The next header carries the app hash that FinalizeBlock returned for this height.
    node.wait_for_height(height + 1)
    header = node.rpc("header", height=str(height + 1))["header"]
    assert header["app_hash"] == app.compute_app_hash({b"city": b"ledger"}).hex().upper()

    query = node.rpc("abci_query", path="/store", data=b"city".hex(), prove=True)["response"]
    assert query["code"] == 0
    assert base64.b64decode(query["value"]) == b"ledger"
    op = query["proofOps"]["ops"][0]
    assert op["type"] == "cityledger:tree" and base64.b64decode(op["data"]) == b"proof:city"

    rejected = node.rpc("broadcast_tx_sync", tx=base64.b64encode(b"no-equals").decode())
    assert rejected["code"] == CODE_BAD_TX and rejected["codespace"] == "kv"


# -- scheduling: consensus work before queued CheckTx -------------------------------------------

class _FakeTransport(asyncio.Transport):
    """Records what the server writes and whether it paused reading (unit tests only)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.reading = True
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True


class _OrderApp(KvApp):
    """Records the order in which CheckTx and FinalizeBlock reach the app."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def check_tx(self, tx: bytes, recheck: bool = False) -> TxResult:
        self.order.append(tx.decode())
        return super().check_tx(tx, recheck)

    def finalize_block(self, request: BlockRequest) -> FinalizeBlockResult:
        self.order.append("finalize")
        return super().finalize_block(request)


def _responses(writes: list[bytes]) -> list:
    buffer = bytearray(b"".join(writes))
    return [abci.Response.FromString(f) for f in split_frames(buffer, len(buffer))]


def test_consensus_requests_overtake_queued_check_tx(monkeypatch):
    from cityledger.engines.cometbft import abci_server
    from cityledger.engines.cometbft.abci_server import (
        MAX_BATCH_REQUESTS,
        PRIORITY_CONSENSUS,
        PRIORITY_DEFAULT,
        PRIORITY_MEMPOOL,
        compute_frame_priority,
    )

    def frame(**kind) -> bytes:
        return abci.Request(**kind).SerializeToString()

    assert compute_frame_priority(frame(check_tx=abci.RequestCheckTx(tx=b"a=1"))) == PRIORITY_MEMPOOL
    assert compute_frame_priority(frame(finalize_block=abci.RequestFinalizeBlock(height=2))) == PRIORITY_CONSENSUS
    assert compute_frame_priority(frame(commit=abci.RequestCommit())) == PRIORITY_CONSENSUS
    assert compute_frame_priority(frame(query=abci.RequestQuery(path="/x"))) == PRIORITY_DEFAULT
    assert compute_frame_priority(frame(flush=abci.RequestFlush())) is None

    monkeypatch.setattr(abci_server, "MAX_QUEUED_FRAMES", 200)
    count = 3 * MAX_BATCH_REQUESTS + 10
    app = _OrderApp()

    async def scenario():
        server = AbciServer(app, "tcp://127.0.0.1:0")
        await server.start()
        try:
            mempool, consensus = abci_server._Connection(server), abci_server._Connection(server)
            mempool_transport, consensus_transport = _FakeTransport(), _FakeTransport()
            mempool.connection_made(mempool_transport)
            consensus.connection_made(consensus_transport)
            checks = [_check(b"k%d=v" % i) for i in range(count)] + [abci.Request(flush=abci.RequestFlush())]
            mempool.data_received(b"".join(compute_frame(r.SerializeToString()) for r in checks))
            assert not mempool_transport.reading  # more than MAX_QUEUED_FRAMES queued: back-pressure
            assert app.order == [] and mempool_transport.writes == []  # queued, nothing answered yet
            block = abci.RequestFinalizeBlock(txs=[b"a=1"], height=1)
            consensus.data_received(compute_frame(frame(finalize_block=block)))
            assert app.order == ["finalize"]  # answered at once, ahead of every queued CheckTx
            assert _responses(consensus_transport.writes)[0].WhichOneof("value") == "finalize_block"
            await asyncio.sleep(0)  # one slice
            assert len(app.order) == 1 + MAX_BATCH_REQUESTS
            consensus.data_received(compute_frame(frame(commit=abci.RequestCommit())))
            assert len(app.order) == 1 + MAX_BATCH_REQUESTS  # the commit is answered between slices
            assert [r.WhichOneof("value") for r in _responses(consensus_transport.writes)] == ["finalize_block", "commit"]
            for _ in range(10):
                await asyncio.sleep(0)
            assert mempool_transport.reading
            return _responses(mempool_transport.writes), len(mempool_transport.writes)
        finally:
            await server.close()

    responses, writes = asyncio.run(scenario())
    assert [r.WhichOneof("value") for r in responses] == ["check_tx"] * count + ["flush"]
    assert all(r.check_tx.code == 0 for r in responses[:-1])
    assert app.order[1:] == [f"k{i}=v" for i in range(count)]  # CheckTx in arrival order
    assert writes == -(-(count + 1) // MAX_BATCH_REQUESTS)  # one write per slice
