"""An asyncio ABCI 2.0 socket server: CometBFT 0.38 drives the unchanged Application through it.

CometBFT opens four connections (consensus, mempool, info/query, snapshot) to the address given as
`--proxy_app` (tcp://host:port or unix:///path) and pipelines uvarint-framed `Request` messages on
each; it expects the `Response`s in the same order, and a `Flush` request asks for everything
answered so far to be written out.

Everything runs on the event loop's thread: the app is synchronous and not thread-safe, and one
thread serialises the calls of the four connections without locks, futures or hand-offs between
threads (under load those cost more than a CheckTx's own Python, and a reader thread waiting for
the GIL held up every consensus request by up to the interpreter's switch interval). Each
connection cuts its byte stream into frames as they arrive. The frames of every connection except
the mempool's are answered at once, in order, from the data callback. CheckTx frames queue and
are answered in slices of at most MAX_BATCH_REQUESTS, each slice a separate loop callback, so a
consensus request that arrives behind thousands of queued CheckTx waits for one slice, not for
all of them: a PrepareProposal or FinalizeBlock held up by the mempool would stretch every block
(proposals miss timeout_propose). Responses of a batch go out in one write.

An exception raised by the app while it changes state (InitChain, the consensus calls, applying a
snapshot) or reads its own (Info) is a bug: it is answered with `ResponseException` (which makes
CometBFT halt), logged with its traceback, and every later request is answered the same way, so
the node stops loudly instead of forking. One raised in a CheckTx, Query or snapshot read fails
that request alone (an error code, no snapshots, an empty chunk), logged with its traceback.

A peer that breaks the protocol is not the app's failure: a frame over MAX_FRAME_BYTES, a request
that does not decode or names no known kind, or a consensus request on a connection other than the
one that carries consensus (the first to send one, while it stays open) is answered with
`ResponseException` on that connection alone, which is then closed; the app and the other
connections go on. When the peer closes the consensus connection,
CometBFT is gone: `stop_reason` says so and serve_forever() returns it as an error.

With a StatelessChecks (stateless.py; the CometBFT engine gives one to a CityApp), a batch of the
mempool connection's queued CheckTx that is heavy (many txs, or large ones such as claims with their
proofs) goes to the verifier worker processes instead: the loop serves the other connections while
they verify, and answers the batch, in order and after any earlier one, once they are done. A block's
txs that this node has not checked are verified there too, before ProcessProposal and FinalizeBlock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from cityledger.app.abc import Application, CommitVotes, QueryResult, TxResult
from cityledger.core.errors import TxError
from cityledger.core.hashing import sha256
from cityledger.engines.cometbft import convert
from cityledger.engines.cometbft.framing import FramingError, encode_uvarint, split_frames
from cityledger.engines.cometbft.proto import abci
from cityledger.engines.cometbft.stateless import (
    MAX_CHECK_BATCH_BYTES,
    MAX_INFLIGHT_BATCHES,
    JobQueue,
    StatelessChecks,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BATCH_REQUESTS = 64  # queued CheckTx answered per slice, or per job of the verifier workers (consensus work waits at most one)
MAX_QUEUED_FRAMES = 32_768  # per connection: past this it stops reading (back-pressure) until half is done
MAX_KEPT_COMMITS = 500  # commits' votes kept in memory for the dashboard (its MAX_CHART_BLOCKS): older ones drop
MAX_CONNECTIONS = 16  # CometBFT opens 4; the rest leaves room for tools such as abci-cli
MAX_QUEUED_BYTES = 16 * 1024 * 1024  # per connection: past this it also stops reading until half is done
# The answer to a CheckTx or Query in which the app raised: those change no committed state, so the
# request fails alone (logged with its traceback) instead of halting the node.
CODESPACE_ABCI = "abci"
CODE_APP_ERROR = 1


# Priorities of the app's work, lowest first; a connection takes the priority of the first request
# it sends that is not Echo or Flush (CometBFT never mixes kinds across its connections). Only
# PRIORITY_MEMPOOL connections queue; the others are answered as their frames arrive.
PRIORITY_CONSENSUS = 0
PRIORITY_DEFAULT = 1  # info/query, snapshots, and calls from the engine (run_in_app)
PRIORITY_MEMPOOL = 2
_CONSENSUS_KINDS = ("init_chain", "prepare_proposal", "process_proposal", "extend_vote", "verify_vote_extension",
                    "finalize_block", "commit")
_NEUTRAL_KINDS = ("echo", "flush")
_CONSENSUS_KIND_SET = frozenset(_CONSENSUS_KINDS)


def _field_priorities() -> dict[int, int | None]:
    """Request oneof field number -> priority (None for Echo and Flush)."""
    out: dict[int, int | None] = {}
    for name, descriptor in abci.Request.DESCRIPTOR.fields_by_name.items():
        if name in _NEUTRAL_KINDS:
            out[descriptor.number] = None
        elif name in _CONSENSUS_KINDS:
            out[descriptor.number] = PRIORITY_CONSENSUS
        else:
            out[descriptor.number] = PRIORITY_MEMPOOL if name == "check_tx" else PRIORITY_DEFAULT
    return out


_FIELD_PRIORITIES = _field_priorities()
# What handle_batch reports besides the responses: all answered, the app failed, the peer was refused.
BATCH_OK = ""
BATCH_FAILED = "failed"
BATCH_REFUSED = "refused"
# Response oneof field name -> its tag (field number, wire type 2) as bytes.
_RESPONSE_TAGS = {name: encode_uvarint(d.number << 3 | 2) for name, d in abci.Response.DESCRIPTOR.fields_by_name.items()}


def compute_response_frame(kind: str, body: bytes) -> bytes:
    """The framed Response whose oneof field `kind` holds the serialised response body."""
    field = _RESPONSE_TAGS[kind] + encode_uvarint(len(body))
    return encode_uvarint(len(field) + len(body)) + field + body


def compute_frame_priority(frame: bytes) -> int | None:
    """The priority of a serialised Request from its first tag (its oneof field); None if neutral."""
    number, shift = 0, 0
    for index, byte in enumerate(frame[:5]):
        number |= (byte & 0x7F) << shift
        if byte < 0x80:
            return _FIELD_PRIORITIES.get(number >> 3, PRIORITY_DEFAULT)
        shift += 7
        if index == 4:
            break
    return PRIORITY_DEFAULT


class AbciAppError(RuntimeError):
    """The application raised while serving an ABCI request: the node must stop."""


def parse_address(address: str) -> tuple[str, str, int]:
    """Split 'tcp://host:port' or 'unix:///path' into (scheme, host or path, port)."""
    if address.startswith("unix://"):
        return "unix", address[len("unix://"):], 0
    if address.startswith("tcp://"):
        host, sep, port = address[len("tcp://"):].rpartition(":")
        if sep and port.isdigit():
            return "tcp", host.strip("[]"), int(port)
    raise ValueError(f"ABCI address: expected tcp://host:port or unix:///path, got {address!r}")


def _log_read_failure(kind: str, exc: Exception) -> None:
    log.error("ABCI: the app raised in %s; answering with an error, the node goes on", kind, exc_info=exc)


class RequestHandler:
    """Answers ABCI requests by calling the app; runs on the server's event loop thread only.

    Each process_* method returns its response serialised; the batch wraps it in a framed
    Response by hand (compute_response_frame), so no Response object is built per request.
    """

    def __init__(self, app: Application, after_commit: Callable[[], None] | None = None,
                 after_check_tx: Callable[[bytes, TxResult, bool], None] | None = None,
                 after_finalize_block: Callable[[list[bytes]], None] | None = None,
                 stateless: StatelessChecks | None = None) -> None:
        self.app = app
        self.after_commit = after_commit
        self.after_check_tx = after_check_tx
        self.after_finalize_block = after_finalize_block
        self.stateless = stateless  # the verifier workers, for a CityApp (None: the app checks everything)
        self._flags: dict[bytes, int] | None = None  # the workers' flags of the batch being answered
        self.fatal_error: BaseException | None = None
        self.last_block_ms = 0.0  # FinalizeBlock to Commit done, of the last block
        # The previous heights' commit signatures that FinalizeBlock carried: the dashboard's "validators up".
        self.commits: deque[CommitVotes] = deque(maxlen=MAX_KEPT_COMMITS)
        self.commits_lock = threading.Lock()
        self._block_started = 0.0
        # Request kind -> a method answering with the serialised response of the same kind.
        self._methods: dict[str, Callable[[Any], bytes]] = {
            "echo": lambda r: abci.ResponseEcho(message=r.message).SerializeToString(),
            "flush": lambda r: b"",
            "info": self.process_info,
            "init_chain": self.process_init_chain,
            "query": self.process_query,
            "check_tx": self.process_check_tx,
            "commit": self.process_commit,
            "list_snapshots": self.process_list_snapshots,
            "offer_snapshot": self.process_offer_snapshot,
            "load_snapshot_chunk": self.process_load_snapshot_chunk,
            "apply_snapshot_chunk": self.process_apply_snapshot_chunk,
            "prepare_proposal": self.process_prepare_proposal,
            "process_proposal": self.process_process_proposal,
            "extend_vote": lambda r: b"",
            "verify_vote_extension": lambda r: abci.ResponseVerifyVoteExtension(
                status=abci.ResponseVerifyVoteExtension.ACCEPT
            ).SerializeToString(),
            "finalize_block": self.process_finalize_block,
        }

    def handle_batch(self, frames: list[bytes], admit: Callable[[str], str | None] | None = None,
                     flags: dict[bytes, int] | None = None) -> tuple[bytes, str]:
        """Answer a batch of framed requests: (the framed responses, BATCH_OK, _FAILED or _REFUSED).

        admit(kind), if given, returns why this connection may not send a request of that kind;
        flags, the verifier workers' FLAG_* of the batch's new CheckTx txs by tx id.
        """
        out: list[bytes] = []
        self._flags = flags
        try:
            for frame in frames:
                kind, body, status = self.handle_frame(frame, admit)
                out.append(compute_response_frame(kind, body))
                if status:
                    return b"".join(out), status
        finally:
            self._flags = None
        return b"".join(out), BATCH_OK

    def handle_frame(self, frame: bytes, admit: Callable[[str], str | None] | None = None) -> tuple[str, bytes, str]:
        """Answer one serialised Request: (the Response kind, its serialised body, the batch status)."""
        if self.fatal_error is not None:
            return (*self._exception(f"application failed earlier: {self.fatal_error!r}"), BATCH_FAILED)
        try:
            request = abci.Request.FromString(frame)
            kind = request.WhichOneof("value")
        except Exception as exc:  # protobuf's DecodeError, or whatever else garbage provokes in the parser
            return self._refuse(f"undecodable request ({type(exc).__name__}: {exc})")
        method = self._methods.get(kind) if kind else None
        if method is None:
            return self._refuse(f"unknown ABCI request {kind!r}")
        problem = admit(kind) if admit is not None else None
        if problem is not None:
            return self._refuse(problem)
        try:
            return kind, method(getattr(request, kind)), BATCH_OK
        except Exception as exc:  # a bug in the app: halt loudly rather than fork
            log.exception("ABCI: application failed; answering with an exception, CometBFT will halt")
            self.fatal_error = exc
            return (*self._exception(f"{type(exc).__name__}: {exc}"), BATCH_FAILED)

    def _refuse(self, problem: str) -> tuple[str, bytes, str]:
        log.warning("ABCI: closing a connection that broke the protocol: %s", problem)
        return (*self._exception(f"protocol error: {problem}"), BATCH_REFUSED)

    @staticmethod
    def _exception(message: str) -> tuple[str, bytes]:
        return "exception", abci.ResponseException(error=message).SerializeToString()

    # -- info/query connection -----------------------------------------------------------------

    def process_info(self, request) -> bytes:
        return convert.to_pb_info(self.app.info()).SerializeToString()

    def process_query(self, request) -> bytes:
        try:
            result = self.app.query(request.path, request.data, request.height, request.prove)
        except Exception as exc:  # a read: answer this query with an error, the node goes on
            _log_read_failure("Query", exc)
            result = QueryResult(code=CODE_APP_ERROR, codespace=CODESPACE_ABCI,
                                 log=f"query failed inside the app ({type(exc).__name__})")
        return convert.to_pb_query(result).SerializeToString()

    # -- mempool connection --------------------------------------------------------------------

    def process_check_tx(self, request) -> bytes:
        tx = request.tx
        recheck = request.type == abci.RECHECK
        try:
            if self.stateless is None or recheck:
                result = self.app.check_tx(tx, recheck=recheck)
            else:
                result = self._check_new_tx(tx)
        except Exception as exc:  # CheckTx changes no committed state: refuse this tx, the node goes on
            _log_read_failure("CheckTx", exc)
            result = TxResult(code=CODE_APP_ERROR, codespace=CODESPACE_ABCI,
                              log=f"tx: the check failed inside the app ({type(exc).__name__})")
        if self.after_check_tx is not None:
            self.after_check_tx(tx, result, recheck)
        return convert.encode_tx_result(result)

    def _check_new_tx(self, tx: bytes) -> TxResult:
        """CheckTx of a new tx, with the workers' verdict on its stateless checks if they gave one."""
        tx_id = sha256(tx)
        flag = None if self._flags is None else self._flags.get(tx_id)
        try:
            decoded = self.stateless.decode_checked(tx, tx_id, flag)
        except TxError:
            decoded = None  # check_tx refuses it with the app's own error
        result = self.app.check_tx(tx, tx_id=tx_id, decoded=decoded)
        if flag is not None or result.ok:  # its stateless checks ran here: a block holding it needs no workers
            self.stateless.mark_checked(tx, tx_id)
        return result

    # -- consensus connection ------------------------------------------------------------------

    def process_init_chain(self, request) -> bytes:
        result = self.app.init_chain(convert.compute_init_chain_request(request))
        return convert.to_pb_init_chain(result).SerializeToString()

    def process_prepare_proposal(self, request) -> bytes:
        block = convert.compute_block_request(request)
        txs = self.app.prepare_proposal(block, request.max_tx_bytes)
        return abci.ResponsePrepareProposal(txs=txs).SerializeToString()

    def process_process_proposal(self, request) -> bytes:
        block = convert.compute_block_request(request)
        if self.stateless is not None:
            self.stateless.prepare_block(block.txs)
        accepted = self.app.process_proposal(block)
        status = abci.ResponseProcessProposal.ACCEPT if accepted else abci.ResponseProcessProposal.REJECT
        return abci.ResponseProcessProposal(status=status).SerializeToString()

    def process_finalize_block(self, request) -> bytes:
        self._block_started = time.perf_counter()
        block = convert.compute_block_request(request)
        if self.stateless is not None:
            self.stateless.prepare_block(block.txs)
        if block.height > 1:
            votes = convert.compute_commit_votes(block.height - 1, request.decided_last_commit)
            with self.commits_lock:
                self.commits.append(votes)
        result = self.app.finalize_block(block)
        if self.stateless is not None:
            self.stateless.forget_block(block.txs)
        if self.after_finalize_block is not None:
            self.after_finalize_block(list(block.txs))
        return convert.encode_finalize_block(result)

    def process_commit(self, request) -> bytes:
        result = self.app.commit()
        if self._block_started:
            self.last_block_ms = (time.perf_counter() - self._block_started) * 1000
        if self.after_commit is not None:
            self.after_commit()
        return abci.ResponseCommit(retain_height=result.retain_height).SerializeToString()

    # -- snapshot connection -------------------------------------------------------------------

    def process_list_snapshots(self, request) -> bytes:
        try:
            snapshots = self.app.list_snapshots()
        except Exception as exc:  # a read: offer no snapshots, the node goes on
            _log_read_failure("ListSnapshots", exc)
            snapshots = []
        return abci.ResponseListSnapshots(snapshots=[convert.to_pb_snapshot(s) for s in snapshots]).SerializeToString()

    def process_offer_snapshot(self, request) -> bytes:
        result = self.app.offer_snapshot(convert.compute_snapshot(request.snapshot), request.app_hash)
        return abci.ResponseOfferSnapshot(result=result).SerializeToString()

    def process_load_snapshot_chunk(self, request) -> bytes:
        try:
            chunk = self.app.load_snapshot_chunk(request.height, request.format, request.chunk)
        except Exception as exc:  # a read: an empty chunk, which the peer's hash check refuses
            _log_read_failure("LoadSnapshotChunk", exc)
            chunk = b""
        return abci.ResponseLoadSnapshotChunk(chunk=chunk).SerializeToString()

    def process_apply_snapshot_chunk(self, request) -> bytes:
        result = self.app.apply_snapshot_chunk(request.index, request.chunk, request.sender)
        return abci.ResponseApplySnapshotChunk(result=result).SerializeToString()


class _Connection(asyncio.Protocol):
    """One ABCI connection: frames in, responses out in the same order."""

    def __init__(self, server: "AbciServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.queued: deque[bytes] = deque()  # frames read, not yet answered (mempool connections only)
        self.queued_bytes = 0
        self.jobs = JobQueue()  # batches taken from `queued` whose txs the verifier workers check
        self.priority: int | None = None  # from its first request other than Echo/Flush
        self.consensus = False  # this connection carries CometBFT's consensus requests
        self.reading_paused = False
        self.writing_paused = False
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.server._accept(self):
            self.closed = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.queued.clear()
        self.queued_bytes = 0
        self.server._release(self)

    def admit(self, kind: str) -> str | None:
        """Why this connection may not send a request of `kind` (None: it may).

        Only the connection that sent the first consensus request may send more: the others
        (mempool, query, snapshot, or a stranger on the socket) cannot change the app's state.
        One connection may mix kinds otherwise, as CometBFT's abci-cli does.
        """
        if self.consensus or kind not in _CONSENSUS_KIND_SET:
            return None
        if not self.server._claim_consensus(self):
            return f"a {kind} request while another connection carries consensus"
        self.consensus = True
        return None

    def close_now(self) -> None:
        """Drop the connection (what was written so far still goes out)."""
        self.closed = True
        self.queued.clear()
        self.queued_bytes = 0
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.buffer += data
        try:
            frames = split_frames(self.buffer, len(self.buffer))
        except FramingError as exc:
            log.warning("ABCI: closing a connection that sent a bad frame: %s", exc)
            self.close_now()
            return
        if not frames:
            return
        if self.priority is None:
            self.priority = next((p for p in map(compute_frame_priority, frames) if p is not None), None)
        if self.priority != PRIORITY_MEMPOOL and not self.queued and not self.writing_paused:
            self.server._answer(self, frames)
            return
        self.queued.extend(frames)
        self.queued_bytes += sum(map(len, frames))
        if (len(self.queued) > MAX_QUEUED_FRAMES or self.queued_bytes > MAX_QUEUED_BYTES) and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self.server._schedule()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.queued:
            self.server._schedule()

    def take(self, limit: int, max_bytes: int = MAX_QUEUED_BYTES) -> list[bytes]:
        """Up to limit queued frames (and max_bytes, but at least one), oldest first; reading resumes
        once half the queue is done."""
        frames: list[bytes] = []
        size = 0
        while self.queued and len(frames) < limit and (not frames or size + len(self.queued[0]) <= max_bytes):
            frames.append(self.queued.popleft())
            size += len(frames[-1])
        self.queued_bytes -= size
        if (self.reading_paused and len(self.queued) <= MAX_QUEUED_FRAMES // 2
                and self.queued_bytes <= MAX_QUEUED_BYTES // 2 and not self.closed):
            self.reading_paused = False
            self.transport.resume_reading()
        return frames


class AbciServer:
    """Serves one Application to CometBFT over ABCI sockets; start(), then close()."""

    def __init__(self, app: Application, address: str,
                 after_commit: Callable[[], None] | None = None,
                 after_check_tx: Callable[[bytes, TxResult, bool], None] | None = None,
                 after_finalize_block: Callable[[list[bytes]], None] | None = None,
                 stateless: StatelessChecks | None = None) -> None:
        """The hooks, if given, run on the loop thread after each Commit, CheckTx (with its recheck
        flag) and FinalizeBlock (with the block's txs). stateless, if given (and started), checks
        batches of CheckTx and unseen block txs in its verifier workers."""
        self.scheme, self._host, self._port = parse_address(address)
        self.stateless = stateless
        self.handler = RequestHandler(app, after_commit, after_check_tx, after_finalize_block, stateless)
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connections: set[_Connection] = set()
        self._failed: asyncio.Event | None = None
        self._slice_scheduled = False
        self._consensus: _Connection | None = None  # the one connection that carries consensus requests
        self._closing = False
        self.stop_reason: str | None = None  # set when the app failed or CometBFT closed the consensus connection

    @property
    def address(self) -> str:
        """The listening address in CometBFT's --proxy_app form (the real port once started)."""
        if self.scheme == "unix":
            return f"unix://{self._host}"
        return f"tcp://{self._host}:{self._port}"

    @property
    def fatal_error(self) -> BaseException | None:
        return self.handler.fatal_error

    async def call_app(self, function: Callable[..., T], *args: Any) -> T:
        """Run function(*args) serialised with the ABCI calls (on the loop thread, between slices)."""
        return function(*args)

    async def start(self) -> None:
        """Listen on the address; connections are served in the running loop."""
        self._loop = asyncio.get_running_loop()
        self._failed = asyncio.Event()
        if self.scheme == "unix":
            if os.path.exists(self._host):
                os.unlink(self._host)  # a stale socket left by a killed node
            self._server = await self._loop.create_unix_server(lambda: _Connection(self), path=self._host)
        else:
            self._server = await self._loop.create_server(lambda: _Connection(self), self._host, self._port)
            self._port = self._server.sockets[0].getsockname()[1]
        log.info("ABCI server listening on %s", self.address)

    async def serve_forever(self) -> None:
        """Wait until the app fails (raise AbciAppError) or the server is closed."""
        if self._server is None or self._failed is None:
            raise RuntimeError("AbciServer.serve_forever() before start()")
        closed = asyncio.ensure_future(self._server.wait_closed())
        failed = asyncio.ensure_future(self._failed.wait())
        await asyncio.wait({closed, failed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (closed, failed):
            task.cancel()
        if self.fatal_error is not None:
            raise AbciAppError(f"the application failed: {self.fatal_error!r}") from self.fatal_error
        if self.stop_reason is not None:
            raise AbciAppError(self.stop_reason)

    async def close(self) -> None:
        """Stop listening and drop the connections."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.closed = True
            connection.transport.close()
        self._connections.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.scheme == "unix" and os.path.exists(self._host):
            os.unlink(self._host)

    # -- serving (all on the loop thread) -------------------------------------------------------

    def _accept(self, connection: _Connection) -> bool:
        if len(self._connections) >= MAX_CONNECTIONS:
            log.error("ABCI: refusing a connection beyond MAX_CONNECTIONS=%d", MAX_CONNECTIONS)
            return False
        self._connections.add(connection)
        return True

    def _claim_consensus(self, connection: _Connection) -> bool:
        """Make connection the consensus connection, unless another one is."""
        if self._consensus is not None and not self._consensus.closed:
            return False
        self._consensus = connection
        return True

    def _release(self, connection: _Connection) -> None:
        """A connection closed; if it carried consensus and the peer closed it, CometBFT is gone."""
        self._connections.discard(connection)
        for job in connection.jobs.jobs:
            self.stateless.finish(job)
        connection.jobs.clear()
        if connection is not self._consensus:
            return
        self._consensus = None
        if not self._closing and self.fatal_error is None and self.stop_reason is None:
            self.stop_reason = "CometBFT closed the consensus connection (it stopped or crashed)"
            log.error("ABCI: %s", self.stop_reason)
            if self._failed is not None:
                self._failed.set()

    def _answer(self, connection: _Connection, frames: list[bytes], flags: dict[bytes, int] | None = None) -> None:
        """Answer frames and write their responses; on an app failure halt, on a protocol error close."""
        payload, status = self.handler.handle_batch(frames, connection.admit, flags)
        if connection.closed:
            return
        connection.transport.write(payload)
        if status == BATCH_FAILED:
            if self.stop_reason is None:
                self.stop_reason = f"the application failed: {self.handler.fatal_error!r}"
            if self._failed is not None:
                self._failed.set()
        if status:
            connection.close_now()  # after a failure the peer halts on the exception; later requests get none

    def _schedule(self) -> None:
        if not self._slice_scheduled and self._loop is not None:
            self._slice_scheduled = True
            self._loop.call_soon(self._run_slice)

    def _run_slice(self) -> None:
        """Answer one slice of every connection with queued frames; come back while any remain."""
        self._slice_scheduled = False
        more = False
        for connection in sorted(self._connections, key=lambda c: PRIORITY_DEFAULT if c.priority is None else c.priority):
            if not connection.queued or connection.closed or connection.writing_paused:
                continue
            if connection.priority == PRIORITY_MEMPOOL and self.stateless is not None:
                more = self._take_checks(connection) or more
                continue
            limit = MAX_BATCH_REQUESTS if connection.priority == PRIORITY_MEMPOOL else len(connection.queued)
            self._answer(connection, connection.take(limit))
            more = more or bool(connection.queued)
        if more:
            self._schedule()

    def _take_checks(self, connection: _Connection) -> bool:
        """Take a batch of the mempool connection's frames: a heavy one goes to the verifier
        workers and is answered when they are done, a light one at once (in order after the
        batches still in the workers). True if this connection should be served again."""
        if len(connection.jobs) >= MAX_INFLIGHT_BATCHES:
            return False  # the job that finishes reschedules
        job = self.stateless.plan(connection.take(MAX_BATCH_REQUESTS, MAX_CHECK_BATCH_BYTES))
        if job.done.is_set() and not connection.jobs:
            self._answer(connection, job.frames)
            return bool(connection.queued)
        connection.jobs.jobs.append(job)
        if job.done.is_set():
            self._answer_ready(connection)
        else:
            self.stateless.submit_check(job, lambda done: self._post(self._answer_ready, connection))
        return bool(connection.queued) and len(connection.jobs) < MAX_INFLIGHT_BATCHES

    def _post(self, function: Callable[..., None], *args: Any) -> None:
        """Run function(*args) on the loop thread (from the verifier's thread); dropped once closed."""
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop is closed: the server is gone, so are the answers
            pass

    def _answer_ready(self, connection: _Connection) -> None:
        """Answer the connection's verified jobs from the front, in request order."""
        while (job := connection.jobs.ready()) is not None:
            self.stateless.finish(job)
            if not connection.closed:
                self._answer(connection, job.frames, job.flags)
        if connection.queued and not connection.closed:
            self._schedule()


async def serve(app: Application, address: str) -> None:
    """Serve app on address until it fails or the task is cancelled."""
    server = AbciServer(app, address)
    await server.start()
    try:
        await server.serve_forever()
    finally:
        await server.close()
