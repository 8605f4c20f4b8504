"""Interfaces in one place: the application (grouped by ABCI connection), the store, the engine.

The application follows ABCI 2.0 so that the solo engine and the CometBFT socket server drive the
very same object: every request and response here maps one to one onto CometBFT's abci/types.proto.
All byte strings are raw bytes (hashes are 32 bytes); heights are ints; block time is integer
nanoseconds since the Unix epoch, taken from the block header, never from the local clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import NamedTuple

from ..core.events import Event, ValidatorUpdate


# -- results shared by the connections -------------------------------------------------------

@dataclass(slots=True)
class TxResult:
    """The outcome of one tx (CheckTx or ExecTxResult): code 0 is success."""

    code: int = 0
    codespace: str = ""
    log: str = ""
    data: bytes = b""
    events: tuple[Event, ...] = ()
    gas_wanted: int = 0
    gas_used: int = 0
    # CheckTx only: who sent it and its nonce, so a mempool can order and bound per sender.
    sender: bytes = b""
    nonce: int = 0
    priority: int = 0

    @property
    def ok(self) -> bool:
        return self.code == 0


# -- info / query connection -----------------------------------------------------------------

@dataclass(frozen=True)
class InfoResult:
    data: str
    version: str
    app_version: int
    last_block_height: int
    last_block_app_hash: bytes


@dataclass(frozen=True)
class QueryResult:
    code: int = 0
    codespace: str = ""
    log: str = ""
    key: bytes = b""
    value: bytes = b""
    proof: bytes = b""  # canonical encoding of core.tree.Proof
    height: int = 0


# -- consensus connection --------------------------------------------------------------------

@dataclass(frozen=True)
class InitChainRequest:
    chain_id: str
    time_ns: int
    initial_height: int
    app_state_bytes: bytes  # the app_state of the genesis file, JSON
    validators: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True)
class InitChainResult:
    app_hash: bytes
    validators: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True)
class Misbehavior:
    """Evidence of a validator's misbehaviour handed to the block (duplicate vote etc.)."""

    type: str  # "duplicate_vote" or "light_client_attack"
    validator_address: bytes
    validator_power: int
    height: int
    time_ns: int
    total_voting_power: int


@dataclass(frozen=True)
class CommitVotes:
    """Who signed the commit of one height, as consensus handed it to the next block (votes of the set)."""

    height: int
    votes: tuple[tuple[bytes, int, bool], ...]  # (validator address, power, signed the block), as consensus orders them


@dataclass(frozen=True)
class BlockRequest:
    """What FinalizeBlock, PrepareProposal and ProcessProposal are given."""

    height: int
    time_ns: int
    txs: tuple[bytes, ...]
    proposer_address: bytes = b""
    hash: bytes = b""
    misbehavior: tuple[Misbehavior, ...] = ()


@dataclass(frozen=True)
class FinalizeBlockResult:
    tx_results: tuple[TxResult, ...]
    app_hash: bytes
    events: tuple[Event, ...] = ()
    validator_updates: tuple[ValidatorUpdate, ...] = ()


@dataclass(frozen=True)
class CommitResult:
    retain_height: int = 0


# -- state sync (snapshot connection) --------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    height: int
    format: int
    chunks: int
    hash: bytes
    metadata: bytes = b""


class OfferSnapshotResult:
    ACCEPT = 1
    ABORT = 2
    REJECT = 3
    REJECT_FORMAT = 4
    REJECT_SENDER = 5


class ApplyChunkResult:
    ACCEPT = 1
    ABORT = 2
    RETRY = 3
    RETRY_SNAPSHOT = 4
    REJECT_SNAPSHOT = 5


class Application(ABC):
    """The ledger application, driven by an engine. Methods of one connection are never concurrent."""

    # info/query connection
    @abstractmethod
    def info(self) -> InfoResult: ...

    @abstractmethod
    def query(self, path: str, data: bytes, height: int = 0, prove: bool = False) -> QueryResult: ...

    # mempool connection
    @abstractmethod
    def check_tx(self, tx: bytes, recheck: bool = False, tx_id: bytes | None = None) -> TxResult:
        """tx_id, if the caller has it, is SHA-256(tx), saving the app from hashing it again."""

    # consensus connection
    @abstractmethod
    def init_chain(self, request: InitChainRequest) -> InitChainResult: ...

    @abstractmethod
    def prepare_proposal(self, request: BlockRequest, max_tx_bytes: int) -> list[bytes]: ...

    @abstractmethod
    def process_proposal(self, request: BlockRequest) -> bool: ...

    @abstractmethod
    def finalize_block(self, request: BlockRequest) -> FinalizeBlockResult: ...

    @abstractmethod
    def commit(self) -> CommitResult: ...

    # snapshot connection
    @abstractmethod
    def list_snapshots(self) -> list[Snapshot]: ...

    @abstractmethod
    def offer_snapshot(self, snapshot: Snapshot, app_hash: bytes) -> int: ...

    @abstractmethod
    def load_snapshot_chunk(self, height: int, format: int, chunk: int) -> bytes: ...

    @abstractmethod
    def apply_snapshot_chunk(self, index: int, chunk: bytes, sender: str) -> int: ...


class Submitted(NamedTuple):
    """An engine's answer to a submission: the tx id and its check result."""

    tx_id: bytes
    result: TxResult


class Engine(ABC):
    """Everything the API, the hosted services and the tools need from the engine running the app.

    Solo and CometBFT implement all of it, so callers never probe an engine for optional parts.
    The counters are of this process's run: blocks and txs committed since it started, and the
    time the last block took to finalize and commit.
    """

    name: str
    blocks_committed: int = 0
    txs_committed: int = 0
    last_block_ms: float = 0.0

    # -- submission and waiting
    @abstractmethod
    def submit(self, raw: bytes) -> Submitted: ...

    @abstractmethod
    def submit_batch(self, raws: list[bytes]) -> list[Submitted]: ...

    @abstractmethod
    def wait_for_tx(self, tx_id: bytes, timeout_s: float) -> tuple[int, int] | None: ...

    # -- the mempool, as this node sees it
    @abstractmethod
    def pending_count(self) -> int:
        """Txs waiting in the mempool."""

    @abstractmethod
    def pending_bytes(self) -> int:
        """Bytes of the txs waiting in the mempool."""

    @abstractmethod
    def is_pending(self, tx_id: bytes) -> bool:
        """True while a tx this node admitted waits in the mempool (not yet committed or dropped)."""

    @abstractmethod
    def pending_nonce(self, address: bytes) -> int:
        """An account's next nonce, counting its txs admitted to the mempool."""

    # -- the app, and how the engine runs
    @abstractmethod
    def run_in_app(self, function, *args):
        """Call function(*args) while no other call is inside the app (reads that must see one state)."""

    def recent_commits(self, count: int) -> list[CommitVotes] | None:
        """The newest `count` commits' votes this process saw, oldest first; None: the engine has no votes
        (solo: this node alone commits every block)."""
        return None

    @abstractmethod
    def fatal_error(self) -> BaseException | None:
        """Why the engine stopped for good (the app failed, consensus exited), or None while it runs."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...


@dataclass
class StoredBlock:
    """A committed block as the node keeps it."""

    height: int
    time_ns: int
    hash: bytes
    app_hash: bytes  # app hash after applying this block
    txs: list[bytes] = field(default_factory=list)
    results: list[TxResult] = field(default_factory=list)
    proposer: bytes = b""
