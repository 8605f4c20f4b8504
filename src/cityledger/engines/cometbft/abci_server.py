"""An asyncio ABCI 2.0 socket server: CometBFT 0.38 drives the unchanged Application through it.

CometBFT opens four connections (consensus, mempool, info/query, snapshot) to the address given as
`--proxy_app` (tcp://host:port or unix:///path) and pipelines uvarint-framed `Request` messages on
each; it expects the `Response`s in the same order, and a `Flush` request asks for everything
answered so far to be written out. Each connection here is a reader task that cuts the byte
stream into frames and hands batches of them to the app thread, and a writer task that writes the
batches' responses back in the order they were read.

The app is synchronous and not thread-safe, so every call into it runs on one app thread:
calls are serialised across the four connections, and per-connection order follows from the
in-order writer and a queue that is FIFO within each priority. The consensus connection goes
first: under load the mempool connection queues thousands of CheckTx, and a PrepareProposal or
FinalizeBlock waiting behind them would stretch every block (proposals miss timeout_propose). An exception raised by the app is a bug, not a rejected tx:
it is answered with `ResponseException` (which makes CometBFT halt), logged with its traceback,
and every later request is answered the same way, so the node stops loudly instead of forking.
"""

from __future__ import annotations

import asyncio
import logging
import os
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

from cityledger.app.abc import Application, TxResult
from cityledger.engines.cometbft import convert
from cityledger.engines.cometbft.framing import FramingError, encode_uvarint, split_frames
from cityledger.engines.cometbft.proto import abci

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_CHUNK_BYTES = 256 * 1024
MAX_BATCH_REQUESTS = 64  # requests handed to the app thread in one go (consensus work waits at most one batch)
MAX_PENDING_BATCHES = 512  # per connection: past this the reader stops reading (back-pressure)
MAX_CONNECTIONS = 16  # CometBFT opens 4; the rest leaves room for tools such as abci-cli


# Priorities of the app thread's work, lowest first; a connection takes the priority of the first
# request it sends that is not Echo or Flush (CometBFT never mixes kinds across its connections).
PRIORITY_CONSENSUS = 0
PRIORITY_DEFAULT = 1  # info/query, snapshots, and calls from the engine (run_in_app)
PRIORITY_MEMPOOL = 2
_CONSENSUS_KINDS = ("init_chain", "prepare_proposal", "process_proposal", "extend_vote", "verify_vote_extension",
                    "finalize_block", "commit")
_NEUTRAL_KINDS = ("echo", "flush")


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


class PriorityExecutor(Executor):
    """One worker thread that runs the highest-priority (lowest number) work first, FIFO within a priority."""

    def __init__(self, thread_name: str = "abci-app") -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._shutdown = False
        self._thread = threading.Thread(target=self._work, name=thread_name, daemon=True)
        self._thread.start()

    def submit_with_priority(self, priority: int, function: Callable[..., T], *args: Any) -> Future:
        if self._shutdown:
            raise RuntimeError("PriorityExecutor: submit after shutdown")
        future: Future = Future()
        self._queue.put((priority, next(self._sequence), future, function, args))
        return future

    def submit(self, function, /, *args, **kwargs) -> Future:
        if kwargs:
            return self.submit_with_priority(PRIORITY_DEFAULT, lambda: function(*args, **kwargs))
        return self.submit_with_priority(PRIORITY_DEFAULT, function, *args)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not self._shutdown:
            self._shutdown = True
            self._queue.put((PRIORITY_MEMPOOL + 1, next(self._sequence), None, None, ()))
        if wait:
            self._thread.join()

    def _work(self) -> None:
        while True:
            _, _, future, function, args = self._queue.get()
            if future is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
                future.set_exception(exc)


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


class RequestHandler:
    """Answers ABCI requests by calling the app; runs on the app thread only.

    Each process_* method returns its response serialised; the batch wraps it in a framed
    Response by hand (compute_response_frame), so no Response object is built per request.
    """

    def __init__(self, app: Application, after_commit: Callable[[], None] | None = None,
                 after_check_tx: Callable[[bytes, TxResult, bool], None] | None = None,
                 after_finalize_block: Callable[[list[bytes]], None] | None = None) -> None:
        self.app = app
        self.after_commit = after_commit
        self.after_check_tx = after_check_tx
        self.after_finalize_block = after_finalize_block
        self.fatal_error: BaseException | None = None
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

    def handle_batch(self, frames: list[bytes]) -> tuple[bytes, bool]:
        """Answer a batch of framed requests: (the framed responses, whether the app failed)."""
        out: list[bytes] = []
        for frame in frames:
            kind, body = self.handle_frame(frame)
            out.append(compute_response_frame(kind, body))
            if kind == "exception":
                return b"".join(out), True
        return b"".join(out), False

    def handle_frame(self, frame: bytes) -> tuple[str, bytes]:
        """Answer one serialised Request: (the Response kind, its serialised body); the kind is
        "exception" if the app failed."""
        if self.fatal_error is not None:
            return self._exception(f"application failed earlier: {self.fatal_error!r}")
        try:
            request = abci.Request.FromString(frame)
            kind = request.WhichOneof("value")
            method = self._methods.get(kind) if kind else None
            if method is None:
                raise AbciAppError(f"unknown ABCI request {kind!r}")
            return kind, method(getattr(request, kind))
        except Exception as exc:  # a bug in the app or a protocol violation: halt loudly
            log.exception("ABCI: application failed; answering with an exception, CometBFT will halt")
            self.fatal_error = exc
            return self._exception(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _exception(message: str) -> tuple[str, bytes]:
        return "exception", abci.ResponseException(error=message).SerializeToString()

    # -- info/query connection -----------------------------------------------------------------

    def process_info(self, request) -> bytes:
        return convert.to_pb_info(self.app.info()).SerializeToString()

    def process_query(self, request) -> bytes:
        result = self.app.query(request.path, request.data, request.height, request.prove)
        return convert.to_pb_query(result).SerializeToString()

    # -- mempool connection --------------------------------------------------------------------

    def process_check_tx(self, request) -> bytes:
        tx = request.tx
        recheck = request.type == abci.RECHECK
        result = self.app.check_tx(tx, recheck=recheck)
        if self.after_check_tx is not None:
            self.after_check_tx(tx, result, recheck)
        return convert.encode_tx_result(result)

    # -- consensus connection ------------------------------------------------------------------

    def process_init_chain(self, request) -> bytes:
        result = self.app.init_chain(convert.compute_init_chain_request(request))
        return convert.to_pb_init_chain(result).SerializeToString()

    def process_prepare_proposal(self, request) -> bytes:
        block = convert.compute_block_request(request)
        txs = self.app.prepare_proposal(block, request.max_tx_bytes)
        return abci.ResponsePrepareProposal(txs=txs).SerializeToString()

    def process_process_proposal(self, request) -> bytes:
        accepted = self.app.process_proposal(convert.compute_block_request(request))
        status = abci.ResponseProcessProposal.ACCEPT if accepted else abci.ResponseProcessProposal.REJECT
        return abci.ResponseProcessProposal(status=status).SerializeToString()

    def process_finalize_block(self, request) -> bytes:
        block = convert.compute_block_request(request)
        result = self.app.finalize_block(block)
        if self.after_finalize_block is not None:
            self.after_finalize_block(list(block.txs))
        return convert.encode_finalize_block(result)

    def process_commit(self, request) -> bytes:
        result = self.app.commit()
        if self.after_commit is not None:
            self.after_commit()
        return abci.ResponseCommit(retain_height=result.retain_height).SerializeToString()

    # -- snapshot connection -------------------------------------------------------------------

    def process_list_snapshots(self, request) -> bytes:
        snapshots = self.app.list_snapshots()
        return abci.ResponseListSnapshots(snapshots=[convert.to_pb_snapshot(s) for s in snapshots]).SerializeToString()

    def process_offer_snapshot(self, request) -> bytes:
        result = self.app.offer_snapshot(convert.compute_snapshot(request.snapshot), request.app_hash)
        return abci.ResponseOfferSnapshot(result=result).SerializeToString()

    def process_load_snapshot_chunk(self, request) -> bytes:
        chunk = self.app.load_snapshot_chunk(request.height, request.format, request.chunk)
        return abci.ResponseLoadSnapshotChunk(chunk=chunk).SerializeToString()

    def process_apply_snapshot_chunk(self, request) -> bytes:
        result = self.app.apply_snapshot_chunk(request.index, request.chunk, request.sender)
        return abci.ResponseApplySnapshotChunk(result=result).SerializeToString()


class AbciServer:
    """Serves one Application to CometBFT over ABCI sockets; start(), then close()."""

    def __init__(self, app: Application, address: str, executor: Executor | None = None,
                 after_commit: Callable[[], None] | None = None,
                 after_check_tx: Callable[[bytes, TxResult, bool], None] | None = None,
                 after_finalize_block: Callable[[list[bytes]], None] | None = None) -> None:
        """The hooks, if given, run on the app thread after each Commit, CheckTx (with its recheck
        flag) and FinalizeBlock (with the block's txs)."""
        self.scheme, self._host, self._port = parse_address(address)
        self.handler = RequestHandler(app, after_commit, after_check_tx, after_finalize_block)
        self._own_executor = executor is None
        self._executor = executor or PriorityExecutor()
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task] = set()
        self._failed: asyncio.Event | None = None

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
        """Run function(*args) on the app thread, serialised with the ABCI calls."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def start(self) -> None:
        """Listen on the address; connections are served in the running loop."""
        self._failed = asyncio.Event()
        if self.scheme == "unix":
            if os.path.exists(self._host):
                os.unlink(self._host)  # a stale socket left by a killed node
            self._server = await asyncio.start_unix_server(self._serve_connection, path=self._host)
        else:
            self._server = await asyncio.start_server(self._serve_connection, self._host, self._port)
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

    async def close(self) -> None:
        """Stop listening, drop the connections and release the app thread."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._own_executor:
            self._executor.shutdown(wait=True)
        if self.scheme == "unix" and os.path.exists(self._host):
            os.unlink(self._host)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= MAX_CONNECTIONS:
            log.error("ABCI: refusing a connection beyond MAX_CONNECTIONS=%d", MAX_CONNECTIONS)
            writer.close()
            return
        self._connections.add(task)
        pending: asyncio.Queue = asyncio.Queue(MAX_PENDING_BATCHES)
        writing = asyncio.create_task(self._write_responses(pending, writer))
        try:
            await self._read_requests(reader, pending, writing)
            # The peer closed its side: answer what was read, then stop.
            if await _enqueue(pending, None, writing):
                await writing
        except FramingError as exc:
            log.error("ABCI: closing a connection that sent a bad frame: %s", exc)
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            writing.cancel()
            writer.close()

    async def _read_requests(self, reader, pending: asyncio.Queue, writing: asyncio.Task) -> None:
        """Cut the stream into frames and queue each batch's future answer, in order."""
        loop = asyncio.get_running_loop()
        buffer = bytearray()
        priority: int | None = None  # this connection's, from its first request other than Echo/Flush
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                return
            buffer += data
            while frames := split_frames(buffer, MAX_BATCH_REQUESTS):
                if priority is None:
                    priority = next((p for p in map(compute_frame_priority, frames) if p is not None), None)
                future = self._submit(loop, priority, frames)
                if not await _enqueue(pending, future, writing):
                    return

    def _submit(self, loop, priority: int | None, frames: list[bytes]) -> asyncio.Future:
        submit = getattr(self._executor, "submit_with_priority", None)
        if submit is None:
            return loop.run_in_executor(self._executor, self.handler.handle_batch, frames)
        chosen = PRIORITY_DEFAULT if priority is None else priority
        return asyncio.wrap_future(submit(chosen, self.handler.handle_batch, frames), loop=loop)

    async def _write_responses(self, pending: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        """Write each batch's responses in the order the batches were read."""
        while (future := await pending.get()) is not None:
            payload, failed = await future
            writer.write(payload)
            await writer.drain()
            if failed:
                if self._failed is not None:
                    self._failed.set()
                writer.close()  # the peer halts on the exception; later requests get none
                return


async def _enqueue(pending: asyncio.Queue, item: Any, writing: asyncio.Task) -> bool:
    """Put item on the queue unless the writer has stopped; False if it has."""
    if writing.done():
        return False
    if not pending.full():
        pending.put_nowait(item)
        return True
    put = asyncio.ensure_future(pending.put(item))
    await asyncio.wait({put, writing}, return_when=asyncio.FIRST_COMPLETED)
    if put.done():
        return True
    put.cancel()
    return False


async def serve(app: Application, address: str) -> None:
    """Serve app on address until it fails or the task is cancelled."""
    server = AbciServer(app, address)
    await server.start()
    try:
        await server.serve_forever()
    finally:
        await server.close()
