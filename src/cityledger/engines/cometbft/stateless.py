"""Stateless checks of the ABCI server's txs in the verifier worker processes the solo engine uses.

CometBFT's mempool pipelines CheckTx requests over the ABCI socket, so a batch of them is often
waiting. Their stateless checks (decoding, signatures, and the modules' stateless_checks, such as a
claim's ezkl proof at about 8 ms) need no state: a background thread hands such a batch to the
verifier processes (engines/solo/verifier.py) while the ABCI loop goes on serving the other
connections, and the CheckTx answers are then given in request order, on the loop, with the state
checks. A block whose txs this node did not check (another validator's proposal, block sync) has
its unseen txs verified the same way, in parallel, before ProcessProposal and FinalizeBlock run.

The workers' flags only spare the app work it would do itself: FLAG_CHECKED lets the modules
remember, by content, that these very bytes passed (CityApp.note_stateless_checked; mobility keeps
the proof's verdict), and FLAG_SIGNED / FLAG_CHECKED let the app skip re-verifying signatures in
CheckTx. A failed or missing verdict refuses nothing here: the handler checks again and stays the
judge, so every tx's result is a pure function of its bytes and the state, on every validator.

Jobs go to the background thread by priority: a block's (the consensus connection waits for it)
before the mempool's, which are verified in the order they were taken.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cityledger.core.errors import TxError
from cityledger.core.hashing import sha256
from cityledger.engines.cometbft.proto import abci
from cityledger.engines.solo.verifier import FLAG_CHECKED, FLAG_REFUSED, SignatureVerifier

log = logging.getLogger(__name__)

MIN_WORKER_TXS = 64  # fewer txs than this go to the workers only if one of them is large:
MIN_WORKER_TX_BYTES = 2_048  # the costly stateless checks ride on large txs (a claim: a 3.8 KB proof, 8 ms)
MAX_CHECK_BATCH_BYTES = 128 * 1024  # per job, about 28 claims (115 ms on 2 workers): a block's job waits at most one
MAX_INFLIGHT_BATCHES = 2  # per connection: the workers verify the next job while the loop answers one
MAX_CHECKED_TXS = 100_000  # tx ids whose stateless checks already ran here (LRU), the app's cache size
CHUNKS_PER_WORKER = 2  # a job is cut so that each worker gets a couple of chunks (they finish together)
JOB_TIMEOUT_S = 120  # a block waits this long for the workers, then lets the handlers verify serially
PRIORITY_BLOCK, PRIORITY_CHECK = 0, 1
_STOP = 2


@dataclass(eq=False)
class Job:
    """Frames of one connection to answer together, and the new CheckTx txs among them to verify."""

    frames: list[bytes]
    raws: list[bytes] = field(default_factory=list)
    tx_ids: list[bytes] = field(default_factory=list)
    flags: dict[bytes, int] | None = None  # tx id -> FLAG_*; None: not verified (too light, or failed)
    done: threading.Event = field(default_factory=threading.Event)


def compute_chunks(raws: list[bytes], workers: int) -> list[list[bytes]]:
    """raws cut in order into about CHUNKS_PER_WORKER chunks per worker."""
    size = max(1, -(-len(raws) // (max(1, workers) * CHUNKS_PER_WORKER)))
    return [raws[i:i + size] for i in range(0, len(raws), size)]


def is_heavy(raws: Sequence[bytes]) -> bool:
    """Worth the workers: many txs, or a large one (one claim already pays for the round trip)."""
    return len(raws) >= MIN_WORKER_TXS or any(len(raw) >= MIN_WORKER_TX_BYTES for raw in raws)


def take_new_check_txs(frames: list[bytes]) -> list[bytes]:
    """The txs of the new (not recheck) CheckTx requests among serialised Requests, in order."""
    out = []
    for frame in frames:
        try:
            request = abci.Request.FromString(frame)
        except Exception:  # noqa: BLE001 - the handler answers an undecodable frame itself
            continue
        if request.WhichOneof("value") == "check_tx" and request.check_tx.type != abci.RECHECK:
            out.append(request.check_tx.tx)
    return out


class StatelessChecks:
    """The worker processes, the thread that feeds them, and what this node has checked already.

    Everything but the background thread runs on the ABCI loop thread.
    """

    def __init__(self, app, workers: int) -> None:
        """app: a CityApp (router, chain_id, stateless_checks, precheck, note_stateless_checked)."""
        self.app = app
        self.verifier = SignatureVerifier(app.router.message_types(), app.chain_id, workers, app.stateless_checks())
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._checked: OrderedDict[bytes, None] = OrderedDict()
        self._inflight: dict[bytes, Job] = {}  # tx id -> the CheckTx job verifying it
        self.verified_txs = 0  # sent to the workers: by CheckTx jobs, and by blocks
        self.block_verified_txs = 0

    # -- life cycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that feeds the workers; it starts them first (each imports the ledger,
        seconds on a loaded machine), so the ABCI server listens at once and early jobs wait."""
        self._thread = threading.Thread(target=self._run, name="abci-verify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after the job it is on, then the workers."""
        if self._thread is not None:
            self._jobs.put((_STOP, -1, None))
            self._thread.join(timeout=JOB_TIMEOUT_S)
            self._thread = None
        self.verifier.shutdown()

    def _run(self) -> None:
        try:
            self.verifier.start()
        except Exception:  # noqa: BLE001 - jobs then fail alike, and the app checks their txs itself
            log.exception("ABCI: the verifier workers did not start; the app checks CheckTx serially")
        while True:
            priority, _, item = self._jobs.get()
            if priority == _STOP:
                return
            job, on_done = item
            try:
                flags = b"".join(self.verifier.verify(compute_chunks(job.raws, self.verifier.workers())))
                job.flags = dict(zip(job.tx_ids, flags))
            except Exception:  # noqa: BLE001 - a dead worker: the handlers verify these txs themselves
                log.exception("ABCI: the verifier workers failed on %d txs; the app checks them serially "
                              "and the next job starts new workers", len(job.raws))
                self.verifier.shutdown()
            job.done.set()
            if on_done is not None:
                on_done(job)

    def _submit(self, job: Job, priority: int, on_done: Callable[[Job], None] | None) -> None:
        self._jobs.put((priority, next(self._order), (job, on_done)))

    # -- CheckTx ---------------------------------------------------------------------------------

    def plan(self, frames: list[bytes]) -> Job:
        """A job for a batch of a mempool connection's frames; its txs to verify are set if heavy."""
        job = Job(frames)
        raws = take_new_check_txs(frames) if self._thread is not None else []
        if raws and is_heavy(raws):
            job.raws, job.tx_ids = raws, [sha256(raw) for raw in raws]
        else:
            job.done.set()
        return job

    def submit_check(self, job: Job, on_done: Callable[[Job], None]) -> None:
        """Verify a planned job in the background; on_done(job) runs on the background thread."""
        for tx_id in job.tx_ids:
            self._inflight[tx_id] = job
        self.verified_txs += len(job.raws)
        self._submit(job, PRIORITY_CHECK, on_done)

    def finish(self, job: Job) -> None:
        """The job's answers are being given: its txs are no longer in flight."""
        for tx_id in job.tx_ids:
            if self._inflight.get(tx_id) is job:
                del self._inflight[tx_id]

    def decode_checked(self, tx: bytes, tx_id: bytes, flag: int | None):
        """What CheckTx hands the app for a tx the workers judged: its DecodedTx (signatures verified,
        and the modules told of passed stateless checks), or None to let the app check it all."""
        if flag is None or flag == FLAG_REFUSED:
            return None
        decoded = self.app.precheck(tx, signatures_verified=True, tx_id=tx_id)
        if flag == FLAG_CHECKED:
            self.app.note_stateless_checked(decoded)
        return decoded

    def mark_checked(self, tx: bytes, tx_id: bytes) -> None:
        """Its stateless checks ran on this node (in the workers, or in an admitting CheckTx); only
        large txs are remembered, the only ones a block sends to the workers."""
        if len(tx) < MIN_WORKER_TX_BYTES:
            return
        self._checked[tx_id] = None
        self._checked.move_to_end(tx_id)
        while len(self._checked) > MAX_CHECKED_TXS:
            self._checked.popitem(last=False)

    # -- blocks ----------------------------------------------------------------------------------

    def prepare_block(self, txs: Sequence[bytes]) -> None:
        """Verify in the workers, and note, a block's txs this node has not checked; wait for them.

        Txs a CheckTx job is verifying now are not sent again: their job is waited for instead.
        """
        if self._thread is None or not txs:
            return
        # Large txs only: the app verifies a block's signatures itself, so only the modules'
        # stateless verdicts (a claim's proof) carry over from the workers to FinalizeBlock.
        large = [(sha256(raw), raw) for raw in txs if len(raw) >= MIN_WORKER_TX_BYTES]
        waiting = list({id(job): job for tx_id, _ in large if (job := self._inflight.get(tx_id)) is not None}.values())
        fresh = [(tx_id, raw) for tx_id, raw in large if tx_id not in self._checked and tx_id not in self._inflight]
        if fresh:
            job = Job([], [raw for _, raw in fresh], [tx_id for tx_id, _ in fresh])
            self.verified_txs += len(fresh)
            self.block_verified_txs += len(fresh)
            self._submit(job, PRIORITY_BLOCK, None)
            waiting.insert(0, job)
            log.info("ABCI: %d txs of a block this node had not checked go to the verifier workers", len(fresh))
        for job in waiting:
            if not job.done.wait(JOB_TIMEOUT_S):
                log.error("ABCI: no verdict from the workers within %ss; the app checks the block serially",
                          JOB_TIMEOUT_S)
                return
            self._note(job)

    def _note(self, job: Job) -> None:
        """Tell the modules of the job's passed stateless checks; its txs count as checked here."""
        for tx_id, raw in zip(job.tx_ids, job.raws):
            flag = None if job.flags is None else job.flags.get(tx_id)
            if flag is None:
                continue
            if flag == FLAG_CHECKED:
                try:
                    self.decode_checked(raw, tx_id, flag)
                except TxError:  # the app refuses it again by itself, with its error
                    continue
            self.mark_checked(raw, tx_id)

    def forget_block(self, txs: Sequence[bytes]) -> None:
        """The block is finalized: its txs cannot come again (their nonces are spent)."""
        for raw in txs:
            if len(raw) >= MIN_WORKER_TX_BYTES:
                self._checked.pop(sha256(raw), None)


class JobQueue:
    """A connection's jobs in request order: answered from the front, each once verified."""

    def __init__(self) -> None:
        self.jobs: deque[Job] = deque()

    def __len__(self) -> int:
        return len(self.jobs)

    def ready(self) -> Job | None:
        """The front job if it is verified (its answers may go out), else None."""
        if self.jobs and self.jobs[0].done.is_set():
            return self.jobs.popleft()
        return None

    def clear(self) -> None:
        self.jobs.clear()
